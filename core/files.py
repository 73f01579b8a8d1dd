"""Uploaded datasets: store under the data root, validate, and resolve references."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import bindparam, or_, select
from sqlalchemy.orm import Session

from core.dataset_formats import DatasetError, DatasetSummary, validate_dataset
from core.db import after_commit, utcnow
from core.errors import Conflict, FileNotFound, InvalidDataset, InvalidRequest
from core.ids import FILE_PREFIX, new_id
from core.models import File, Job
from core.pages import Page, newest_first
from core.quotas import file_too_large, storage_exceeded, upload_allowance
from core.settings import Settings
from core.states import JobStatus

CHUNK = 1 << 20


def _validated(path: Path, param: str) -> DatasetSummary:
    try:
        return validate_dataset(path)
    except DatasetError as exc:
        raise InvalidDataset(f"invalid dataset: {exc}", line=exc.line, param=param) from exc


def _copy_within_limits(
    stream: BinaryIO, target: Path, max_file: int | None, storage_left: int | None, stored_limit: int | None
) -> tuple[int, str]:
    """Stream the upload to ``target``; (size, sha256). Stops at the first byte over a limit."""
    digest, size = hashlib.sha256(), 0
    with target.open("wb") as out:
        while chunk := stream.read(CHUNK):
            size += len(chunk)
            if max_file is not None and size > max_file:
                raise file_too_large(max_file)
            if storage_left is not None and stored_limit is not None and size > storage_left:
                raise storage_exceeded(stored_limit)
            digest.update(chunk)
            out.write(chunk)
    return size, digest.hexdigest()


def store_upload(session: Session, settings: Settings, *, tenant: str, filename: str, stream: BinaryIO) -> File:
    """Copy an upload under the data root, refusing it (and keeping nothing) if it is not a usable dataset."""
    max_file, storage_left = upload_allowance(session, settings, tenant)
    settings.files_dir.mkdir(parents=True, exist_ok=True)
    file_id = new_id(FILE_PREFIX)
    final = settings.files_dir / f"{file_id}.jsonl"
    partial = final.with_suffix(".partial")
    try:
        stored_limit = settings.limits_for(tenant).max_stored_bytes
        size, sha256 = _copy_within_limits(stream, partial, max_file, storage_left, stored_limit)
        if size == 0:
            raise InvalidDataset("invalid dataset: the file is empty", param="file")
        summary = _validated(partial, "file")
        os.replace(partial, final)
    finally:
        partial.unlink(missing_ok=True)
    record = File(
        id=file_id,
        tenant=tenant,
        filename=filename,
        bytes=size,
        sha256=sha256,
        format=summary.format.value,
        line_count=summary.lines,
        example_count=summary.examples,
        path=str(final.relative_to(settings.data_root)),
        created_at=utcnow(),
    )
    session.add(record)
    return record


def get_file(session: Session, *, tenant: str, file_id: str, param: str = "id") -> File:
    """A tenant's file; another tenant's id is as unknown as one that never existed."""
    record = session.get(File, file_id)
    if record is None or record.tenant != tenant:
        raise _not_found(file_id, param)
    return record


def _not_found(file_id: str, param: str) -> FileNotFound:
    return FileNotFound(f"no file with id {file_id!r}", param=param)


def list_files(session: Session, *, tenant: str, limit: int, after: str | None = None) -> Page[File]:
    """Newest first; ``after`` is the id of the last file of the previous page."""
    cursor = get_file(session, tenant=tenant, file_id=after, param="after") if after is not None else None
    return newest_first(session, select(File).where(File.tenant == tenant), File, cursor, limit)


# A job in these states will still read its files (a paused one when it resumes).
_USING_STATES = (JobStatus.QUEUED.value, JobStatus.RUNNING.value, JobStatus.PAUSED.value)


def delete_file(session: Session, settings: Settings, *, tenant: str, file_id: str) -> File:
    """Remove a file and its bytes; refused while an unfinished job still needs it."""
    record = get_file(session, tenant=tenant, file_id=file_id)
    users = session.scalars(
        select(Job.id)
        .where(Job.tenant == tenant, Job.status.in_(_USING_STATES))
        .where(or_(Job.training_file == file_id, Job.validation_file == file_id))
        .limit(3)
    ).all()
    if users:
        raise Conflict(
            f"file {file_id} is used by unfinished job(s) {', '.join(users)}; cancel them or wait until they end",
            param="id",
        )
    session.delete(record)
    path = file_path(settings, record)
    after_commit(session, lambda: path.unlink(missing_ok=True))
    return record


def file_path(settings: Settings, record: File) -> Path:
    return settings.data_root / record.path


@dataclass(frozen=True)
class ResolvedDataset:
    path: str  # under the data root
    sha256: str | None  # known for uploaded files; a path dataset's is computed when needed


# Every submit and estimate resolves its datasets: two columns, built once, on the session's connection (as
# core.api_keys looks keys up), not a File entity through the ORM.
_DATASET_OF_FILE = select(File.path, File.sha256).where(File.id == bindparam("id"), File.tenant == bindparam("tenant"))


def resolve_dataset(session: Session, settings: Settings, *, tenant: str, ref: str, param: str) -> ResolvedDataset:
    """A file id, or (if the operator allows it) a path in the tenant's datasets directory -> path under the root."""
    if ref.startswith(f"{FILE_PREFIX}-"):
        row = session.connection().execute(_DATASET_OF_FILE, {"id": ref, "tenant": tenant}).one_or_none()
        if row is None:
            raise _not_found(ref, param)
        return ResolvedDataset(row.path, row.sha256)
    if not settings.allow_path_datasets:
        raise InvalidRequest(f"{param} must be a file id (file-…); upload datasets with POST /files", param=param)
    root = settings.data_root.resolve()
    allowed = settings.tenant_datasets_dir(tenant).resolve()
    try:
        path = (allowed / ref).resolve()  # an absolute ref replaces `allowed`, and is then checked like any other
        inside, exists = path.is_relative_to(allowed), path.is_file()
    except (OSError, ValueError) as exc:
        raise InvalidRequest(f"{param} {ref!r} is not a usable path", param=param) from exc
    if not inside:
        raise InvalidRequest(f"{param} {ref!r} is outside this tenant's datasets directory", param=param)
    if not exists:
        raise FileNotFound(f"{param} {ref!r} does not exist in this tenant's datasets directory", param=param)
    _validated(path, param)
    return ResolvedDataset(str(path.relative_to(root)), None)

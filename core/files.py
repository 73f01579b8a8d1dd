"""Uploaded datasets: store under the data root, validate, and resolve references."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import BinaryIO

from sqlalchemy.orm import Session

from core.dataset_formats import DatasetError, DatasetSummary, validate_dataset
from core.db import utcnow
from core.errors import FileNotFound, InvalidDataset, InvalidRequest
from core.ids import FILE_PREFIX, new_id
from core.models import DEFAULT_TENANT, File
from core.settings import Settings

CHUNK = 1 << 20


def _validated(path: Path, param: str) -> DatasetSummary:
    try:
        return validate_dataset(path)
    except DatasetError as exc:
        raise InvalidDataset(f"invalid dataset: {exc}", line=exc.line, param=param) from exc


def store_upload(
    session: Session, settings: Settings, filename: str, stream: BinaryIO, tenant: str = DEFAULT_TENANT
) -> File:
    """Copy an upload under the data root, refusing it (and keeping nothing) if it is not a usable dataset."""
    settings.files_dir.mkdir(parents=True, exist_ok=True)
    file_id = new_id(FILE_PREFIX)
    final = settings.files_dir / f"{file_id}.jsonl"
    partial = final.with_suffix(".partial")
    digest, size = hashlib.sha256(), 0
    try:
        with partial.open("wb") as out:
            while chunk := stream.read(CHUNK):
                size += len(chunk)
                if size > settings.max_upload_bytes:
                    raise InvalidRequest(
                        f"file is larger than the limit of {settings.max_upload_bytes} bytes", param="file"
                    )
                digest.update(chunk)
                out.write(chunk)
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
        sha256=digest.hexdigest(),
        format=summary.format.value,
        line_count=summary.lines,
        example_count=summary.examples,
        path=str(final.relative_to(settings.data_root)),
        created_at=utcnow(),
    )
    session.add(record)
    return record


def get_file(session: Session, file_id: str, tenant: str = DEFAULT_TENANT, param: str = "id") -> File:
    record = session.get(File, file_id)
    if record is None or record.tenant != tenant:
        raise FileNotFound(f"no file with id {file_id!r}", param=param)
    return record


def resolve_dataset(session: Session, settings: Settings, ref: str, param: str, tenant: str = DEFAULT_TENANT) -> str:
    """A file id or a path under the data root -> the dataset's path relative to the data root."""
    if ref.startswith(f"{FILE_PREFIX}-"):
        return get_file(session, ref, tenant, param=param).path
    root = settings.data_root.resolve()
    candidate = Path(ref)
    path = (candidate if candidate.is_absolute() else root / candidate).resolve()
    if not path.is_relative_to(root):
        raise InvalidRequest(f"{param} {ref!r} is outside the data root; upload it with POST /files", param=param)
    if not path.is_file():
        raise FileNotFound(f"{param} {ref!r} does not exist under the data root", param=param)
    _validated(path, param)
    return str(path.relative_to(root))

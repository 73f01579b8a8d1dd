"""Downloadable archives of a job's outputs (adapter, merged model, a checkpoint), built once and cached.

A .tar is written beside the job's outputs on first request, with its SHA-256 beside it, and then served
from disk: never read whole into memory, and a plain file, so HTTP range requests can resume a download.
"""

from __future__ import annotations

import hashlib
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path

from core.errors import NotFound
from core.settings import Settings

CHUNK = 1 << 20
ARCHIVES_DIRNAME = "archives"


class ArtifactNotFound(NotFound):
    code = "artifact_not_found"


@dataclass(frozen=True)
class Archive:
    path: Path
    sha256: str
    filename: str


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def archive_of(settings: Settings, job_id: str, source: Path, name: str, what: str) -> Archive:
    """The tar of ``source`` (a directory under the data root) named ``name``.tar, built if not yet cached."""
    if not source.is_dir():
        raise ArtifactNotFound(f"job {job_id} has no {what} to download", param="id")
    target = settings.jobs_dir / job_id / ARCHIVES_DIRNAME / f"{name}.tar"
    checksum = target.with_suffix(".tar.sha256")
    if not (target.is_file() and checksum.is_file()):
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(f".{os.getpid()}.partial")
        with tarfile.open(partial, "w") as tar:
            tar.add(source, arcname=name)  # relative names only: the server's layout stays on the server
        digest = _sha256(partial)
        os.replace(partial, target)  # two requests racing both build; either result is complete
        checksum.write_text(digest)
    return Archive(target, checksum.read_text().strip(), f"{job_id}-{name}.tar")

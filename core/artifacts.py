"""Which of a job's outputs can be downloaded, resolved to archives (adapter, merged model, checkpoints)."""

from __future__ import annotations

from pathlib import PurePosixPath

from sqlalchemy.orm import Session

from core.archives import Archive, ArtifactNotFound, archive_of
from core.checkpoints import get_checkpoint
from core.jobs import get_job
from core.settings import Settings


def adapter_archive(session: Session, settings: Settings, *, tenant: str, job_id: str) -> Archive:
    """The trained adapter with its tokenizer and model card."""
    job = get_job(session, tenant=tenant, job_id=job_id)
    if job.adapter_path is None:
        raise ArtifactNotFound(f"job {job_id} is {job.status} and has no adapter yet; it is saved on success")
    return archive_of(settings, job_id, settings.data_root / job.adapter_path, "adapter", "adapter")


def merged_archive(session: Session, settings: Settings, *, tenant: str, job_id: str) -> Archive:
    """The base model with the adapter merged in, when the job asked for one (merge_adapter)."""
    job = get_job(session, tenant=tenant, job_id=job_id)
    merged = (job.result or {}).get("merged")
    if not merged:
        raise ArtifactNotFound(f"job {job_id} has no merged model; submit with merge_adapter=true to get one")
    return archive_of(settings, job_id, settings.jobs_dir / job_id / merged, "merged", "merged model")


def checkpoint_archive(
    session: Session, settings: Settings, *, tenant: str, job_id: str, checkpoint_id: str
) -> Archive:
    """One saved checkpoint (adapter, optimizer, scheduler and RNG state), while retention still keeps it."""
    get_job(session, tenant=tenant, job_id=job_id)
    row = get_checkpoint(session, job_id, checkpoint_id)
    if row.deleted_at is not None:
        raise ArtifactNotFound(f"checkpoint {checkpoint_id} (step {row.step}) was removed by checkpoint retention")
    name = PurePosixPath(row.path).name
    return archive_of(settings, job_id, settings.data_root / row.path, name, f"checkpoint {checkpoint_id}")

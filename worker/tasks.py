"""RQ entry points. Enqueued by dotted path, so importing this stays cheap."""

from __future__ import annotations

from core.logs import configure_logging
from core.settings import get_settings
from worker.pinning import pin_gpus


def run_job(job_id: str, gpus: list[int] | None = None) -> str:
    """Run one fine-tune job by id, already claimed by the worker parent on ``gpus``; returns how it ended.

    ``gpus`` are the GPUs the parent reserved for the job (its own first); None leaves the pinning the
    job process inherited from a CPU worker. A message the parent has not rewritten never reaches here.
    """
    if gpus is not None:
        pin_gpus(gpus)  # before the import below brings in torch: a job on N GPUs sees exactly its N
    from worker.runner import JobRunner  # torch is imported here, in the job process only

    settings = get_settings()
    configure_logging(settings)  # a fresh interpreter: RQ spawned it without tuneq's logging
    return JobRunner(settings).run(job_id, gpus).value

"""RQ entry points. Enqueued by dotted path, so importing this stays cheap."""

from __future__ import annotations

from core.logs import configure_logging
from core.settings import get_settings


def run_job(job_id: str) -> str:
    """Run one fine-tune job by id, already claimed by the worker parent; returns how it ended."""
    from worker.runner import JobRunner  # torch is imported here, in the job process only

    settings = get_settings()
    configure_logging(settings)  # a fresh interpreter: RQ spawned it without tuneq's logging
    return JobRunner(settings).run(job_id).value

"""What a job process reports about the job it runs: its log context and its wait and run times."""

from __future__ import annotations

import time

from core.db import utcnow
from core.logs import bind_job
from core.metrics.recorded import record_job_run, record_job_wait
from core.models import Job


class JobWatch:
    """Started at the claim; ``finished`` records how long the attempt ran and how it ended."""

    def __init__(self, job: Job, worker_id: str) -> None:
        bind_job(job.id, job.tenant, worker_id)  # every log line from here on names the job
        if job.attempt == 1:  # a retry's wait would count the failed attempt's run as waiting
            record_job_wait((utcnow() - job.created_at).total_seconds())
        self._started = time.monotonic()

    def finished(self, outcome: str) -> None:
        record_job_run(outcome, time.monotonic() - self._started)

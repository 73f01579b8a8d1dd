"""Redis transport: the queue message is only a wake-up call carrying a job id."""

from __future__ import annotations

from redis import Redis
from rq import Queue

from core.settings import Settings

# Dotted path, so the API enqueues without importing the worker (and torch).
RUN_JOB_TASK = "worker.tasks.run_job"


def connect_redis(settings: Settings) -> Redis:
    if not settings.redis_url:
        raise RuntimeError("no Redis URL configured; start the embedded one or set TUNEQ_REDIS_URL")
    return Redis.from_url(settings.redis_url)


def job_queue(connection: Redis, settings: Settings) -> Queue:
    return Queue(settings.queue_name, connection=connection)


def enqueue_job(queue: Queue, job_id: str, settings: Settings) -> str:
    """Put a job id on the queue; returns the RQ job id."""
    rq_job = queue.enqueue(
        RUN_JOB_TASK,
        job_id,
        job_timeout=settings.job_timeout_seconds,  # RQ's 180 s default would kill any real fine-tune
        result_ttl=3600,
        failure_ttl=7 * 24 * 3600,
        description=f"fine-tune {job_id}",
    )
    return str(rq_job.id)

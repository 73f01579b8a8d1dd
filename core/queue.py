"""Redis transport: the queue message is only a wake-up call carrying a job id.

Each queued job has one message. A worker woken by any message claims the best
queued job in the database (core.scheduling), so a message may end up serving
another job; the count of messages still matches the count of queued jobs, and
one left over finds nothing to claim and is dropped.
"""

from __future__ import annotations

from redis import Redis
from rq import Queue

from core.settings import Settings

# Dotted path, so the API enqueues without importing the worker (and torch).
RUN_JOB_TASK = "worker.tasks.run_job"


def connect_redis(settings: Settings) -> Redis:
    if not settings.redis_url:
        raise RuntimeError("no Redis URL configured; start the embedded one or set TUNEQ_REDIS_URL")
    return Redis.from_url(settings.redis_url, health_check_interval=30)


def job_queue(connection: Redis, settings: Settings) -> Queue:
    return Queue(settings.queue_name, connection=connection)


def message_id(job_id: str) -> str:
    return f"{job_id}_wake"


def enqueue_job(queue: Queue, job_id: str, settings: Settings) -> str:
    """Put a wake-up message for ``job_id`` on the queue; returns the RQ job id."""
    rq_job = queue.enqueue(
        RUN_JOB_TASK,
        job_id,
        job_id=message_id(job_id),
        job_timeout=settings.job_timeout_seconds,  # RQ's 180 s default would kill any real fine-tune
        result_ttl=600,
        failure_ttl=7 * 24 * 3600,
        description=f"fine-tune {job_id}",
    )
    return str(rq_job.id)


def queued_job_ids(queue: Queue) -> set[str]:
    """The tuneq job ids that have a wake-up message waiting."""
    return {rq_id.removesuffix("_wake") for rq_id in queue.get_job_ids()}


def remove_message(queue: Queue, job_id: str) -> None:
    queue.remove(message_id(job_id))

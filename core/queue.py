"""Redis transport: the queue message is only a wake-up call carrying a job id.

Each queued job has a message (each message its own id). A worker woken by any message claims the best
queued job in the database (core.scheduling), so a message may end up serving
another job; the count of messages still matches the count of queued jobs, and
one left over finds nothing to claim and is dropped.
"""

from __future__ import annotations

import secrets

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


WAKE = "_wake_"


def message_id(job_id: str) -> str:
    """A new id for each message. The worker that takes a message rewrites it to name the job it claimed; a
    second message for the same job, sharing the id, would overwrite that rewrite (the job process then ran
    the wrong job) or, dropped by another worker, delete it (the job process found no message at all)."""
    return f"{job_id}{WAKE}{secrets.token_hex(6)}"


def job_id_of(message: str) -> str:
    return message.partition(WAKE)[0]


def enqueue_job(queue: Queue, job_id: str, settings: Settings) -> str:
    """Put a wake-up message for ``job_id`` on the queue; returns the RQ job id."""
    # One pipeline for RQ's two writes (the queue's registration, then the message): without one, RQ sends
    # each as a round trip of its own, and every submit waits for both.
    with queue.connection.pipeline() as pipe:
        rq_job = queue.enqueue_call(
            RUN_JOB_TASK,
            args=(job_id,),
            job_id=message_id(job_id),
            timeout=settings.job_timeout_seconds,  # RQ's 180 s default would kill any real fine-tune
            result_ttl=600,
            failure_ttl=7 * 24 * 3600,
            description=f"fine-tune {job_id}",
            pipeline=pipe,
        )
        pipe.execute()
    return str(rq_job.id)


def queued_job_ids(queue: Queue) -> set[str]:
    """The tuneq job ids that have a wake-up message waiting."""
    return {job_id_of(message) for message in queue.get_job_ids()}


def remove_message(queue: Queue, job_id: str) -> None:
    """Take ``job_id``'s waiting messages off the queue (a cancelled or paused job needs no wake-up)."""
    for message in queue.get_job_ids():
        if job_id_of(message) == job_id:
            queue.remove(message)

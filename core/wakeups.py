"""Give queued jobs that have no message in Redis one, without leaving a message behind a job that left the queue.

The reconciler and the GPU-release path decide from a database read which
jobs lack a message; a job cancelled or paused between that read and the
send has already had its messages removed (after its commit), so the new
message would outlive it. Sending first and then checking the jobs again
closes that window: a job that left the queue before the check is seen and
its new message taken back; one that leaves after the check removes its
messages after its own commit, which is after the send.
"""

from __future__ import annotations

from collections.abc import Iterable

from rq import Queue
from sqlalchemy import select

from core.db import read_session_factory
from core.models import Job
from core.queue import enqueue_job, queued_job_ids
from core.settings import Settings
from core.states import JobStatus


def wake_jobs_without_message(settings: Settings, queue: Queue, job_ids: Iterable[str]) -> list[str]:
    """Send a message to each of ``job_ids`` that has none waiting; returns the jobs still queued that got one."""
    present = queued_job_ids(queue)
    sent = {job_id: enqueue_job(queue, job_id, settings) for job_id in job_ids if job_id not in present}
    if not sent:
        return []
    with read_session_factory(settings.resolved_database_url)() as session:
        left = set(session.scalars(select(Job.id).where(Job.id.in_(sent), Job.status != JobStatus.QUEUED.value)))
    for job_id in left:
        queue.remove(sent[job_id])
    return [job_id for job_id in sent if job_id not in left]

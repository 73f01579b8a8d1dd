"""Put lost work back: jobs whose worker went silent, and queued jobs Redis forgot.

Both run on a timer (in the API process, or ``tuneq maintenance``), in any
number of processes at once: on PostgreSQL a round first takes a session
advisory lock and a process that does not get it skips the round, so two
replicas never act on the same job; every change is also a compare-and-set
transition, and a duplicate queue message is dropped by the claim in
milliseconds. Staleness is judged by the database's clock (core.clock), the
same clock heartbeats are written with.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from rq import Queue
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core import attempts, gpu_reservations, jobs, workers
from core.clock import db_now_minus
from core.cost import attempt_charge
from core.db import engine_for, transaction
from core.errors import IllegalTransition
from core.models import Job
from core.settings import Settings
from core.states import JobStatus
from core.wakeups import wake_jobs_without_message

log = logging.getLogger(__name__)

# Names "maintenance of the tuneq in schema <hashtext(schema)>" in PostgreSQL's two-key advisory lock space
# (core.gpu_reservations uses another class there). Per schema: deployments that share a database in schemas
# of their own must not skip each other's rounds.
MAINTENANCE_LOCK_CLASS = 0x7476


@dataclass
class RecoveryReport:
    requeued: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    reenqueued: list[str] = field(default_factory=list)
    released_gpus: int = 0  # stale GPU reservations deleted


def _stale_running_jobs(session: Session, settings: Settings) -> list[Job]:
    last_sign = func.coalesce(Job.heartbeat_at, Job.started_at)
    cutoff = db_now_minus(settings.heartbeat_stale_seconds)
    query = select(Job).where(Job.status == JobStatus.RUNNING.value, last_sign < cutoff)
    return list(session.scalars(query))


def lost_time_charge(settings: Settings, job: Job) -> dict[str, Any]:
    """Charge the GPU time a lost attempt used, up to its last heartbeat."""
    if job.started_at is None:
        return {}
    seconds = max(0.0, ((job.heartbeat_at or job.started_at) - job.started_at).total_seconds())
    charge = attempt_charge(settings, job.device or "cpu", job.device_name or "cpu", seconds, job.gpus)
    return {"gpu_seconds": Job.gpu_seconds + charge.gpu_seconds, "cost_usd": Job.cost_usd + charge.cost_usd}


def recover_lost_jobs(settings: Settings, queue: Queue, report: RecoveryReport) -> None:
    """Running jobs with a stale heartbeat go back to queued, or fail after max_attempts."""
    with transaction(settings.resolved_database_url) as session:
        stale = _stale_running_jobs(session, settings)
    for job in stale:
        silent = f"worker {job.worker_id} stopped beating"
        charge = lost_time_charge(settings, job)
        try:
            with transaction(settings.resolved_database_url) as session:
                # owner: only while the silent worker still holds it (another reaper may have acted already).
                if not attempts.may_retry(job):
                    message = f"{silent}; gave up after {job.attempt} attempts"
                    jobs.finish_job(
                        session,
                        job.id,
                        JobStatus.FAILED,
                        message,
                        owner=str(job.worker_id),
                        error_code="worker_lost",
                        error_message=message,
                        **charge,
                    )
                    report.failed.append(job.id)
                else:
                    message = f"{silent}; requeued ({attempts.describe(job)} used)"
                    jobs.requeue_job(session, settings, queue, job.id, message, owner=str(job.worker_id), **charge)
                    report.requeued.append(job.id)
                workers.mark_lost(session, str(job.worker_id))
        except IllegalTransition:
            continue  # it finished or was taken meanwhile


def release_stale_reservations(settings: Settings, report: RecoveryReport) -> None:
    """GPUs still reserved for a job that no longer runs under its reserving worker (lost, reaped) are freed."""
    with transaction(settings.resolved_database_url) as session:
        report.released_gpus += gpu_reservations.release_stale(session)


def reenqueue_forgotten_jobs(settings: Settings, queue: Queue, report: RecoveryReport) -> None:
    """Queued jobs with no message in Redis (flushed, restarted, or never enqueued) get one."""
    cutoff = db_now_minus(settings.reconcile_after_seconds)
    with transaction(settings.resolved_database_url) as session:
        waiting = list(
            session.scalars(select(Job.id).where(Job.status == JobStatus.QUEUED.value, Job.updated_at <= cutoff))
        )
    if waiting:
        report.reenqueued.extend(wake_jobs_without_message(settings, queue, waiting))


@contextmanager
def maintenance_turn(database_url: str) -> Iterator[bool]:
    """Yields whether this process may run a maintenance round now (only one process at a time may).

    PostgreSQL: a session advisory lock, held on a connection that sits idle
    (no open transaction) while the round runs and released when it ends or
    the process dies. SQLite serves one host, so every round may run.
    """
    engine = engine_for(database_url)
    if engine.dialect.name != "postgresql":
        yield True
        return
    key = (MAINTENANCE_LOCK_CLASS, func.hashtext(func.current_schema()))
    with engine.connect() as conn:
        acquired = bool(conn.execute(select(func.pg_try_advisory_lock(*key))).scalar_one())
        conn.commit()
        try:
            yield acquired
        finally:
            if acquired:
                conn.execute(select(func.pg_advisory_unlock(*key)))
                conn.commit()


def run_recovery(settings: Settings, queue: Queue) -> RecoveryReport:
    """One maintenance round, or nothing if another process is running one."""
    report = RecoveryReport()
    with maintenance_turn(settings.resolved_database_url) as mine:
        if not mine:
            return report
        recover_lost_jobs(settings, queue, report)
        release_stale_reservations(settings, report)  # after the reaper: the jobs it took back free their GPUs
        reenqueue_forgotten_jobs(settings, queue, report)
    if report.requeued or report.failed or report.reenqueued or report.released_gpus:
        log.info("recovery: %s", report)
    return report


def recovery_loop(settings: Settings, queue: Queue, stop: threading.Event) -> None:
    """Run recovery every ``maintenance_interval_seconds`` until ``stop`` is set; errors never end the loop."""
    while not stop.wait(settings.maintenance_interval_seconds):
        try:
            run_recovery(settings, queue)
        except Exception:  # a database or Redis outage: try again next round
            log.exception("recovery round failed")

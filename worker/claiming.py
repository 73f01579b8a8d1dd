"""The worker parent's side of a job: claim it before any process is spawned, and clean up after.

The parent never imports torch, so a claim costs one short transaction: a
message with nothing left to claim (its job cancelled, finished, or claimed
by another worker) is dropped in milliseconds without starting a process,
and a claimed job is ``running`` before its job process has imported anything.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from rq import Queue
from sqlalchemy import update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from core import attempts, gpu_reservations, jobs, workers
from core.clock import db_now
from core.db import run_with_retry, transaction
from core.errors import IllegalTransition
from core.gpu_reservations import WorkerGpus
from core.models import Job
from core.queue import connect_redis, job_queue
from core.recovery import lost_time_charge
from core.scheduling import claim_next_job, wake_waiting_jobs
from core.settings import Settings
from core.states import JobStatus
from core.workers import WorkerStatus

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Device:
    """What a worker's job processes train on, known to the parent without importing torch."""

    kind: str  # "cuda" or "cpu"
    name: str  # the GPU's name from nvidia-smi, or "cpu"

    @classmethod
    def of(cls, gpu_name: str | None) -> Device:
        # No GPU answered nvidia-smi: the trainer will find no CUDA device either and train on the CPU.
        return cls("cuda", gpu_name) if gpu_name else cls("cpu", "cpu")


@dataclass(frozen=True)
class Claim:
    job_id: str
    gpus: list[int] | None  # the GPU indices reserved for it (this worker's first); None for a CPU worker


def claim_for_message(settings: Settings, worker_id: str, device: Device, gpus: WorkerGpus | None) -> Claim | None:
    """Claim the best queued job that fits (core.scheduling) for this worker, with its GPUs; None if none may run."""

    def claim(session: Session) -> Claim | None:
        job = claim_next_job(session, settings, worker_id, gpus, device=device.kind, device_name=device.name)
        if job is None:
            return None
        workers.beat(session, worker_id, status=WorkerStatus.BUSY, current_job_id=job.id)
        return Claim(job.id, gpu_reservations.reserved_for(session, job.id) if gpus is not None else None)

    claimed: Claim | None = run_with_retry(
        settings.resolved_database_url, claim, deadline_seconds=settings.database_retry_seconds
    )
    return claimed


class ClaimKeeper(threading.Thread):
    """Beats for a claimed job from the parent while its job process lives.

    The job process needs seconds to import the trainer before its own
    heartbeat starts (and longer still on a loaded host), and the reaper must
    not take the job back meanwhile. A lost host stops both beats, so the
    reaper still finds its jobs. Owner-checked: never beats for a job that is
    no longer this worker's.
    """

    def __init__(self, settings: Settings, job_id: str, worker_id: str) -> None:
        super().__init__(name=f"claim-{job_id}", daemon=True)
        self._settings, self._job_id, self._worker_id = settings, job_id, worker_id
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.wait(self._settings.heartbeat_interval_seconds):
            try:
                with transaction(self._settings.resolved_database_url) as session:
                    session.execute(
                        update(Job)
                        .where(
                            Job.id == self._job_id,
                            Job.worker_id == self._worker_id,
                            Job.status == JobStatus.RUNNING.value,
                        )
                        .values(heartbeat_at=db_now())
                    )
            except SQLAlchemyError as exc:  # a short outage: the next beat retries
                log.warning("heartbeat for claimed job %s failed: %s", self._job_id, exc)

    def stop(self) -> None:
        self._done.set()
        self.join(timeout=30)


def release_after_job_process(
    settings: Settings, worker_id: str, job_id: str, stopped_before_start: bool = False
) -> None:
    """After the job process ended: free its GPUs, and if it died still holding the job, put the job back now.

    A job process that ends normally has moved the job on (finished, requeued);
    one that crashed (killed, segfault) left it running under this worker, and
    waiting for the reaper would only waste ``heartbeat_stale_seconds``.
    ``stopped_before_start``: there was no job process, because a stop came
    between the claim and the spawn; like a graceful stop, the job goes back
    with the attempt its claim used refunded.
    Freed GPUs wake the best waiting jobs: one too big for the GPUs free when
    its message came was passed over, and may fit now.
    """

    def release(session: Session) -> None:
        job = session.get(Job, job_id)
        if job is not None and job.status == JobStatus.RUNNING and job.worker_id == worker_id:
            if stopped_before_start:
                _hand_back(session, settings, job, worker_id)
            else:
                _take_back(session, settings, job, worker_id)
        freed = gpu_reservations.release(session, job_id, worker_id)
        if freed:
            wake_waiting_jobs(session, settings, job_queue(connect_redis(settings), settings), count=freed)
        workers.beat(session, worker_id, status=WorkerStatus.IDLE)

    run_with_retry(settings.resolved_database_url, release, deadline_seconds=settings.database_retry_seconds)


def _hand_back(session: Session, settings: Settings, job: Job, worker_id: str) -> None:
    queue: Queue = job_queue(connect_redis(settings), settings)
    message = "worker stopping before the job started; requeued"
    try:
        jobs.requeue_job(session, settings, queue, job.id, message, owner=worker_id, **attempts.refunded())
    except IllegalTransition:
        log.info("job %s was moved on meanwhile (cancel or reaper)", job.id)


def _take_back(session: Session, settings: Settings, job: Job, worker_id: str) -> None:
    """The same rule as the reaper's for a lost worker: requeue while attempts remain, else fail."""
    charge = lost_time_charge(settings, job)
    try:
        if attempts.may_retry(job):
            queue: Queue = job_queue(connect_redis(settings), settings)
            message = f"job process died; requeued ({attempts.describe(job)} used)"
            jobs.requeue_job(session, settings, queue, job.id, message, owner=worker_id, **charge)
        else:
            message = f"job process died; gave up after {job.attempt} attempts"
            jobs.finish_job(
                session,
                job.id,
                JobStatus.FAILED,
                message,
                owner=worker_id,
                error_code="worker_lost",
                error_message=message,
                **charge,
            )
    except IllegalTransition:
        log.info("job %s was moved on meanwhile (cancel or reaper)", job.id)

"""The job service: submit, read, cancel, pause, resume, requeue and finish jobs.

Every status change goes through ``transition``, a single compare-and-set
UPDATE, so two processes can never both move a job (and so never both run it).
Each service function owns a change together with its consequences: the row,
the event, the webhook outbox rows, and the queue message (sent only once the
transaction commits).
Functions a user reaches take ``tenant`` as a required keyword.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redis.exceptions import RedisError
from rq import Queue
from sqlalchemy import select, update
from sqlalchemy.orm import Session, joinedload

from core import attempts
from core.base_models import check_base_model
from core.clock import db_now
from core.db import after_commit, insert_now, utcnow
from core.errors import IllegalTransition, JobNotFound
from core.estimates import Estimate, EstimateInput, estimate
from core.feasibility import check_fits_a_gpu, check_gpu_count
from core.files import ResolvedDataset, resolve_dataset
from core.ids import JOB_PREFIX, new_id
from core.models import Job, JobEvent, JobMetric
from core.pages import Page, newest_first
from core.queue import enqueue_job, remove_message
from core.quotas import check_can_queue
from core.settings import Settings
from core.states import JobStatus, sources_of
from core.url_guard import check_webhook_url
from core.webhook_events import record_status_event

log = logging.getLogger(__name__)

# Views show each job's newest loss: loaded in the same statement as the job, one primary-key join.
WITH_LATEST_METRIC = joinedload(Job.latest_metric)


@dataclass
class NewJob:
    base_model: str
    training_file: str
    hyperparameters: dict[str, Any]
    validation_file: str | None = None
    webhook_url: str | None = None
    metadata: dict[str, Any] | None = None
    priority: int = 0
    max_run_seconds: int | None = None
    suffix: str | None = None
    gpus: int = 1  # of one host, data-parallel; batch_size is per GPU


def message_event(job_id: str, message: str, *, level: str = "info", data: dict[str, Any] | None = None) -> JobEvent:
    """A row of the job's event log, as every change of the job writes one."""
    return JobEvent(job_id=job_id, message=message, level=level, type="message", data=data)


def add_event(
    session: Session, job_id: str, message: str, *, level: str = "info", data: dict[str, Any] | None = None
) -> None:
    session.add(message_event(job_id, message, level=level, data=data))


def _enqueue_after_commit(session: Session, queue: Queue, settings: Settings, job_id: str) -> None:
    def send() -> None:
        # If Redis is down the job stays queued in the database and the reconciler enqueues it later.
        try:
            enqueue_job(queue, job_id, settings)
        except RedisError:
            log.warning("could not enqueue %s; it stays queued in the database", job_id)

    after_commit(session, send)


@dataclass(frozen=True)
class _Checked:
    base_model: str
    training: ResolvedDataset
    validation: ResolvedDataset | None


def _check(session: Session, settings: Settings, tenant: str, new: NewJob) -> _Checked:
    """Everything submit refuses, apart from quotas: an estimate refuses the same requests."""
    check_fits_a_gpu(new.hyperparameters)
    check_gpu_count(settings, new.gpus)
    base_model = check_base_model(settings, new.base_model)
    if new.webhook_url is not None:
        check_webhook_url(new.webhook_url, settings.allow_private_webhooks)
    training = resolve_dataset(session, settings, tenant=tenant, ref=new.training_file, param="training_file")
    validation = (
        resolve_dataset(session, settings, tenant=tenant, ref=new.validation_file, param="validation_file")
        if new.validation_file
        else None
    )
    return _Checked(base_model, training, validation)


def _estimate(session: Session, settings: Settings, new: NewJob, checked: _Checked) -> Estimate:
    job = EstimateInput(
        base_model=checked.base_model,
        training_path=settings.data_root / checked.training.path,
        training_sha256=checked.training.sha256,
        hyperparameters=new.hyperparameters,
        has_validation_file=checked.validation is not None,
        gpus=new.gpus,
    )
    return estimate(session, settings, job)


def estimate_job(session: Session, settings: Settings, *, tenant: str, new: NewJob) -> Estimate:
    """What ``new`` would cost, checked as submit checks it; nothing is written or queued."""
    return _estimate(session, settings, new, _check(session, settings, tenant, new))


def submit_job(session: Session, settings: Settings, queue: Queue, *, tenant: str, new: NewJob) -> Job:
    """Validate everything, insert a queued job with its estimate and event, and enqueue it once committed."""
    check_can_queue(session, settings, tenant)
    checked = _check(session, settings, tenant, new)
    job = Job(
        id=new_id(JOB_PREFIX),
        tenant=tenant,
        status=JobStatus.QUEUED,
        base_model=checked.base_model,
        training_file=new.training_file,
        training_path=checked.training.path,
        validation_file=new.validation_file,
        validation_path=checked.validation.path if checked.validation else None,
        hyperparameters=new.hyperparameters,
        webhook_url=new.webhook_url,
        user_metadata=new.metadata,
        priority=new.priority,
        max_attempts=settings.max_attempts,
        max_run_seconds=new.max_run_seconds or settings.max_run_seconds,
        suffix=new.suffix,
        gpus=new.gpus,
        attempt=0,
        step=0,
        trained_tokens=0,
        gpu_seconds=0.0,
        cost_usd=0.0,
        estimate=_estimate(session, settings, new, checked).model_dump(mode="json"),
        created_at=utcnow(),
        updated_at=utcnow(),
    )
    insert_now(session, job)
    insert_now(session, message_event(job.id, "job created", data={"hyperparameters": new.hyperparameters}))
    _enqueue_after_commit(session, queue, settings, job.id)
    return job


def _leave_queue(
    session: Session, queue: Queue, job: Job, target: JobStatus, message: str, **values: Any
) -> Job | None:
    """Move a queued job to ``target`` and drop its message once committed; None if a worker claimed it first."""
    try:
        moved = transition(session, job.id, target, message, **values)
    except IllegalTransition:
        session.refresh(job)  # claimed in the meantime: the caller treats it as running
        return None
    after_commit(session, lambda: remove_message(queue, job.id))
    return moved


def _ask_running_job(session: Session, job: Job, request: str, message: str) -> Job:
    """Set a running job's ``request`` timestamp (once); its heartbeat sees it and stops at the next step."""
    if getattr(job, request) is None:
        setattr(job, request, utcnow())
        add_event(session, job.id, message)
    return job


def cancel_job(session: Session, queue: Queue, *, tenant: str, job_id: str) -> Job:
    """Cancel a queued job now (and drop its message); ask a running one to stop at its next step."""
    job = get_job(session, tenant=tenant, job_id=job_id)
    if job.status == JobStatus.QUEUED:
        cancelled = _leave_queue(
            session, queue, job, JobStatus.CANCELLED, "cancelled while queued", finished_at=utcnow()
        )
        if cancelled is not None:
            return cancelled
    if job.status == JobStatus.RUNNING:
        return _ask_running_job(
            session, job, "cancel_requested_at", "cancel requested; stopping at the next training step"
        )
    if job.status == JobStatus.PAUSED:
        return transition(session, job_id, JobStatus.CANCELLED, "cancelled while paused", finished_at=utcnow())
    raise IllegalTransition(f"job {job_id} already {job.status}; only queued, running or paused jobs can be cancelled")


def pause_job(session: Session, queue: Queue, *, tenant: str, job_id: str) -> Job:
    """Hold a queued job now (and drop its message); ask a running one to checkpoint and let go of its GPU."""
    job = get_job(session, tenant=tenant, job_id=job_id)
    if job.status == JobStatus.PAUSED:
        return job
    if job.status == JobStatus.QUEUED:
        paused = _leave_queue(session, queue, job, JobStatus.PAUSED, "paused while queued")
        if paused is not None:
            return paused
    if job.status == JobStatus.RUNNING:
        return _ask_running_job(
            session, job, "pause_requested_at", "pause requested; checkpointing at the next training step"
        )
    raise IllegalTransition(f"job {job_id} already {job.status}; only queued or running jobs can be paused")


def resume_job(session: Session, settings: Settings, queue: Queue, *, tenant: str, job_id: str) -> Job:
    """Put a paused job back in the queue (it continues from its checkpoint); withdraw a pending pause request."""
    job = get_job(session, tenant=tenant, job_id=job_id)
    if job.status == JobStatus.RUNNING and job.pause_requested_at is not None:
        job.pause_requested_at = None
        add_event(session, job_id, "pause withdrawn; training goes on")
        return job
    if job.status != JobStatus.PAUSED:
        raise IllegalTransition(f"job {job_id} is {job.status}; only paused jobs can be resumed")
    resumed = transition(session, job_id, JobStatus.QUEUED, "resumed; queued to continue from its checkpoint")
    _enqueue_after_commit(session, queue, settings, job_id)
    return resumed


def pause_stopped_job(session: Session, job_id: str, message: str, owner: str, **values: Any) -> Job:
    """``owner``'s run stopped at a checkpoint because its owner asked for a pause: park it, GPU freed."""
    return transition(
        session,
        job_id,
        JobStatus.PAUSED,
        message,
        owner=owner,
        worker_id=None,
        heartbeat_at=None,
        pause_requested_at=None,
        **values,
    )


@dataclass(frozen=True)
class HeartbeatReply:
    status: str
    cancel_requested: bool
    pause_requested: bool


def heartbeat(session: Session, job_id: str) -> HeartbeatReply:
    """Record a sign of life of a running job; returns what its owner has asked for since."""
    session.execute(
        update(Job).where(Job.id == job_id).values(heartbeat_at=db_now()).execution_options(synchronize_session=False)
    )
    job = session.get(Job, job_id, populate_existing=True)
    assert job is not None
    return HeartbeatReply(job.status, job.cancel_requested_at is not None, job.pause_requested_at is not None)


def get_job(session: Session, *, tenant: str, job_id: str) -> Job:
    """A tenant's job; another tenant's id is as unknown as one that never existed."""
    job = session.get(Job, job_id, options=[WITH_LATEST_METRIC])
    if job is None or job.tenant != tenant:
        raise JobNotFound(f"no fine-tune job with id {job_id!r}", param="id")
    return job


def list_jobs(
    session: Session, *, tenant: str, limit: int, after: str | None = None, metadata: dict[str, str] | None = None
) -> Page[Job]:
    """Newest first; ``after`` is the id of the last job of the previous page; ``metadata`` pairs must all match."""
    query = select(Job).where(Job.tenant == tenant).options(WITH_LATEST_METRIC)
    for key, value in (metadata or {}).items():
        query = query.where(Job.user_metadata[key].as_string() == value)
    cursor = get_job(session, tenant=tenant, job_id=after) if after is not None else None
    return newest_first(session, query, Job, cursor, limit)


def transition(
    session: Session, job_id: str, target: JobStatus, message: str, owner: str | None = None, **values: Any
) -> Job:
    """Move a job to ``target`` if the state machine allows it from its current state.

    Compare-and-set: the UPDATE only matches a row still in an allowed source
    state, so a concurrent change makes this one fail instead of overwriting it.
    With ``owner``, it also only matches while that worker holds the job (a
    worker presumed lost must not overwrite the run that replaced it).
    The event row and the webhook outbox rows are written in the same
    transaction: a change that commits has them, one that rolls back has none.
    """
    conditions = [Job.id == job_id, Job.status.in_([s.value for s in sources_of(target)])]
    if owner is not None:
        conditions.append(Job.worker_id == owner)
    statement = (
        update(Job)
        .where(*conditions)
        .values(status=target.value, updated_at=db_now(), **values)
        .returning(Job)
        .execution_options(synchronize_session=False)
    )
    job = session.scalars(statement).one_or_none()
    if job is None:
        current = session.get(Job, job_id)
        if current is None:
            raise JobNotFound(f"no fine-tune job with id {job_id!r}", param="id")
        if owner is not None and current.worker_id != owner:
            raise IllegalTransition(f"job {job_id} is no longer held by worker {owner}")
        raise IllegalTransition(f"job {job_id} is {current.status}; it cannot become {target.value}")
    session.refresh(job)
    event = message_event(job_id, message, data={"status": target.value})
    session.add(event)
    session.flush()  # its id orders this job's webhook events: the UPDATE above serialises the job's changes
    record_status_event(session, job, target, sequence=event.id)
    return job


def requeue_job(
    session: Session, settings: Settings, queue: Queue, job_id: str, message: str, owner: str, **values: Any
) -> Job:
    """Put a running job back on the queue, released by ``owner`` (a stopping or a lost worker)."""
    job = transition(
        session, job_id, JobStatus.QUEUED, message, owner=owner, worker_id=None, heartbeat_at=None, **values
    )
    _enqueue_after_commit(session, queue, settings, job_id)
    return job


def finish_job(session: Session, job_id: str, status: JobStatus, message: str, owner: str, **values: Any) -> Job:
    """End ``owner``'s run of a job in a terminal ``status``."""
    assert status.is_terminal, status
    return transition(session, job_id, status, message, owner=owner, finished_at=utcnow(), **values)


def claim_job(session: Session, job_id: str, worker_id: str, **values: Any) -> Job | None:
    """Take a queued job for this worker; None if another worker has it or it is no longer queued.

    ``values`` are written with the claim (the device the run will use, so even a lost attempt can be priced).
    """
    try:
        return transition(
            session,
            job_id,
            JobStatus.RUNNING,
            f"claimed by worker {worker_id}",
            worker_id=worker_id,
            started_at=db_now(),  # the database's clock: the reaper judges heartbeats by it (core.clock)
            heartbeat_at=db_now(),
            cancel_requested_at=None,
            pause_requested_at=None,
            **attempts.claimed(),
            **values,
        )
    except IllegalTransition:
        return None


def record_progress(session: Session, job_id: str, total_steps: int | None, **metric: Any) -> None:
    """Store one logging step and keep the job's progress columns current (a step is also a heartbeat)."""
    row = JobMetric(job_id=job_id, created_at=utcnow(), **metric)
    session.add(row)
    progress: dict[str, Any] = {"step": metric["step"], "epoch": metric.get("epoch"), "heartbeat_at": db_now()}
    if row.loss is not None:
        session.flush()  # the row's id, for the job's pointer to its newest loss
        progress["latest_metric_id"] = row.id
    if total_steps is not None:
        progress["total_steps"] = total_steps
    if metric.get("trained_tokens") is not None:
        progress["trained_tokens"] = metric["trained_tokens"]
    session.execute(update(Job).where(Job.id == job_id).values(**progress).execution_options(synchronize_session=False))


def job_metrics(session: Session, job_id: str, after_id: int | None, limit: int) -> Page[JobMetric]:
    query = select(JobMetric).where(JobMetric.job_id == job_id)
    if after_id is not None:
        query = query.where(JobMetric.id > after_id)
    rows = session.scalars(query.order_by(JobMetric.id).limit(limit + 1)).all()
    return Page(items=rows[:limit], has_more=len(rows) > limit)


def job_events(session: Session, job_id: str) -> Sequence[JobEvent]:
    return session.scalars(select(JobEvent).where(JobEvent.job_id == job_id).order_by(JobEvent.id)).all()

"""The job service: create, read, and move jobs through their states.

Every status change goes through ``transition``, a single compare-and-set
UPDATE, so two processes can never both move a job (and so never both run it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from core.base_models import check_base_model
from core.db import utcnow
from core.errors import IllegalTransition, InvalidRequest, JobNotFound
from core.files import resolve_dataset
from core.ids import JOB_PREFIX, new_id
from core.models import DEFAULT_TENANT, Job, JobEvent, JobMetric
from core.settings import Settings
from core.states import JobStatus, sources_of


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
    tenant: str = DEFAULT_TENANT


@dataclass
class Page:
    items: Sequence[Any]
    has_more: bool
    extra: dict[str, Any] = field(default_factory=dict)


def add_event(
    session: Session, job_id: str, message: str, *, level: str = "info", data: dict[str, Any] | None = None
) -> None:
    session.add(JobEvent(job_id=job_id, message=message, level=level, type="message", data=data))


def create_job(session: Session, settings: Settings, new: NewJob) -> Job:
    """Validate references and insert a queued job; the caller commits, then enqueues."""
    base_model = check_base_model(new.base_model)
    training_path = resolve_dataset(session, settings, new.training_file, param="training_file")
    validation_path = (
        resolve_dataset(session, settings, new.validation_file, param="validation_file")
        if new.validation_file
        else None
    )
    job = Job(
        id=new_id(JOB_PREFIX),
        tenant=new.tenant,
        status=JobStatus.QUEUED,
        base_model=base_model,
        training_file=new.training_file,
        training_path=training_path,
        validation_file=new.validation_file,
        validation_path=validation_path,
        hyperparameters=new.hyperparameters,
        webhook_url=new.webhook_url,
        user_metadata=new.metadata,
        priority=new.priority,
        max_attempts=settings.max_attempts,
        max_run_seconds=new.max_run_seconds or settings.max_run_seconds,
        attempt=0,
        step=0,
        trained_tokens=0,
        gpu_seconds=0.0,
        cost_usd=0.0,
        created_at=utcnow(),
        updated_at=utcnow(),
    )
    session.add(job)
    session.flush()
    add_event(session, job.id, "job created", data={"hyperparameters": new.hyperparameters})
    return job


def request_cancel(session: Session, job_id: str, tenant: str = DEFAULT_TENANT) -> Job:
    """Cancel a queued job now; ask a running one to stop at its next step."""
    job = get_job(session, job_id, tenant)
    if job.status == JobStatus.QUEUED:
        try:
            return transition(session, job_id, JobStatus.CANCELLED, "cancelled while queued", finished_at=utcnow())
        except IllegalTransition:
            session.refresh(job)  # claimed in the meantime: cancel it as a running job
    if job.status == JobStatus.RUNNING:
        if job.cancel_requested_at is None:
            job.cancel_requested_at = utcnow()
            add_event(session, job_id, "cancel requested; stopping at the next training step")
        return job
    raise IllegalTransition(f"job {job_id} already {job.status}; only queued or running jobs can be cancelled")


def heartbeat(session: Session, job_id: str) -> tuple[str, bool]:
    """Record a sign of life of a running job; returns (status, cancel requested)."""
    session.execute(
        update(Job).where(Job.id == job_id).values(heartbeat_at=utcnow()).execution_options(synchronize_session=False)
    )
    job = session.get(Job, job_id, populate_existing=True)
    assert job is not None
    return job.status, job.cancel_requested_at is not None


def get_job(session: Session, job_id: str, tenant: str = DEFAULT_TENANT) -> Job:
    job = session.get(Job, job_id)
    if job is None or job.tenant != tenant:
        raise JobNotFound(f"no fine-tune job with id {job_id!r}", param="id")
    return job


def list_jobs(session: Session, limit: int, after: str | None = None, tenant: str = DEFAULT_TENANT) -> Page:
    """Newest first; ``after`` is the id of the last job of the previous page."""
    query = select(Job).where(Job.tenant == tenant)
    if after is not None:
        cursor = session.get(Job, after)
        if cursor is None or cursor.tenant != tenant:
            raise InvalidRequest(f"cursor {after!r} is not a job id of this account", param="after")
        query = query.where(
            or_(Job.created_at < cursor.created_at, and_(Job.created_at == cursor.created_at, Job.id < cursor.id))
        )
    rows = session.scalars(query.order_by(Job.created_at.desc(), Job.id.desc()).limit(limit + 1)).all()
    return Page(items=rows[:limit], has_more=len(rows) > limit)


def transition(
    session: Session, job_id: str, target: JobStatus, message: str, owner: str | None = None, **values: Any
) -> Job:
    """Move a job to ``target`` if the state machine allows it from its current state.

    Compare-and-set: the UPDATE only matches a row still in an allowed source
    state, so a concurrent change makes this one fail instead of overwriting it.
    With ``owner``, it also only matches while that worker holds the job (a
    worker presumed lost must not overwrite the run that replaced it).
    """
    conditions = [Job.id == job_id, Job.status.in_([s.value for s in sources_of(target)])]
    if owner is not None:
        conditions.append(Job.worker_id == owner)
    statement = (
        update(Job)
        .where(*conditions)
        .values(status=target.value, updated_at=utcnow(), **values)
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
    add_event(session, job_id, message, data={"status": target.value})
    return job


def requeue_job(session: Session, job_id: str, message: str, owner: str, **values: Any) -> Job:
    """Put a running job back on the queue, released by ``owner`` (a stopping or a lost worker)."""
    return transition(
        session, job_id, JobStatus.QUEUED, message, owner=owner, worker_id=None, heartbeat_at=None, **values
    )


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
            attempt=Job.attempt + 1,
            started_at=utcnow(),
            heartbeat_at=utcnow(),
            cancel_requested_at=None,
            **values,
        )
    except IllegalTransition:
        return None


def record_progress(session: Session, job_id: str, total_steps: int | None, **metric: Any) -> None:
    """Store one logging step and keep the job's progress columns current (a step is also a heartbeat)."""
    session.add(JobMetric(job_id=job_id, created_at=utcnow(), **metric))
    progress: dict[str, Any] = {"step": metric["step"], "epoch": metric.get("epoch"), "heartbeat_at": utcnow()}
    if total_steps is not None:
        progress["total_steps"] = total_steps
    if metric.get("trained_tokens") is not None:
        progress["trained_tokens"] = metric["trained_tokens"]
    session.execute(update(Job).where(Job.id == job_id).values(**progress).execution_options(synchronize_session=False))


def job_metrics(session: Session, job_id: str, after_id: int | None, limit: int) -> Page:
    query = select(JobMetric).where(JobMetric.job_id == job_id)
    if after_id is not None:
        query = query.where(JobMetric.id > after_id)
    rows = session.scalars(query.order_by(JobMetric.id).limit(limit + 1)).all()
    return Page(items=rows[:limit], has_more=len(rows) > limit)


def latest_metrics(session: Session, job_id: str) -> JobMetric | None:
    query = select(JobMetric).where(JobMetric.job_id == job_id, JobMetric.loss.is_not(None))
    return session.scalars(query.order_by(JobMetric.id.desc()).limit(1)).one_or_none()


def job_events(session: Session, job_id: str) -> Sequence[JobEvent]:
    return session.scalars(select(JobEvent).where(JobEvent.job_id == job_id).order_by(JobEvent.id)).all()

"""Fine-tune jobs: submit, read, list, metrics, events."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Query, Response
from redis.exceptions import RedisError

from api.deps import QueueDep, SessionDep, SettingsDep
from api.schemas import EventList, FineTuneRequest, JobList, MetricList
from core import jobs
from core.models import Job
from core.queue import enqueue_job, remove_message
from core.states import JobStatus
from core.views import JobView, event_view, job_view, metric_view

log = logging.getLogger(__name__)

router = APIRouter(prefix="/finetune", tags=["fine-tune"])


def _view(session: SessionDep, settings: SettingsDep, job: Job) -> JobView:
    return job_view(job, jobs.latest_metrics(session, job.id), settings.data_root)


@router.post("", status_code=202, response_model=JobView)
def create_fine_tune(
    body: FineTuneRequest, response: Response, session: SessionDep, settings: SettingsDep, queue: QueueDep
) -> JobView:
    """Validate, record the job, then put its id on the queue."""
    new = jobs.NewJob(
        base_model=body.base_model,
        training_file=body.training_file,
        validation_file=body.validation_file,
        hyperparameters=body.model_dump(mode="json")["hyperparameters"],
        webhook_url=str(body.webhook_url) if body.webhook_url else None,
        metadata=body.metadata,
        priority=body.priority,
        max_run_seconds=body.max_run_seconds,
    )
    with session.begin():
        job = jobs.create_job(session, settings, new)
    # After commit: a worker must find the row when the message arrives. If Redis
    # is down the job stays queued in the database and is enqueued again later.
    try:
        enqueue_job(queue, job.id, settings)
    except RedisError:
        log.exception("could not enqueue %s; it stays queued in the database", job.id)
    response.headers["Location"] = f"/finetune/{job.id}"
    return _view(session, settings, job)


@router.get("", response_model=JobList)
def list_fine_tunes(
    session: SessionDep,
    settings: SettingsDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    after: Annotated[str | None, Query(description="id of the last job of the previous page")] = None,
) -> JobList:
    page = jobs.list_jobs(session, limit, after)
    data = [_view(session, settings, job) for job in page.items]
    return JobList(data=data, has_more=page.has_more, next_cursor=data[-1].id if page.has_more else None)


@router.get("/{job_id}", response_model=JobView)
def get_fine_tune(job_id: str, session: SessionDep, settings: SettingsDep) -> JobView:
    return _view(session, settings, jobs.get_job(session, job_id))


@router.post("/{job_id}/cancel", response_model=JobView)
def cancel_fine_tune(job_id: str, session: SessionDep, settings: SettingsDep, queue: QueueDep) -> JobView:
    """Cancel: a queued job ends at once; a running one stops at its next training step."""
    with session.begin():
        job = jobs.request_cancel(session, job_id)
    if job.status == JobStatus.CANCELLED:
        try:
            remove_message(queue, job_id)
        except RedisError:
            log.warning("could not remove %s from the queue; its message will find nothing to claim", job_id)
    return _view(session, settings, job)


@router.get("/{job_id}/metrics", response_model=MetricList)
def get_metrics(
    job_id: str,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=10000)] = 1000,
    after: Annotated[int | None, Query(ge=0, description="next_cursor of the previous page")] = None,
) -> MetricList:
    jobs.get_job(session, job_id)
    page = jobs.job_metrics(session, job_id, after, limit)
    return MetricList(
        data=[metric_view(m) for m in page.items],
        has_more=page.has_more,
        next_cursor=page.items[-1].id if page.has_more else None,
    )


@router.get("/{job_id}/events", response_model=EventList)
def get_events(job_id: str, session: SessionDep) -> EventList:
    jobs.get_job(session, job_id)
    return EventList(data=[event_view(e) for e in jobs.job_events(session, job_id)])

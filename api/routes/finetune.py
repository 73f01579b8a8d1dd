"""Fine-tune jobs: estimate, submit, read, list, cancel, pause, resume; metrics, events, checkpoints, downloads,
webhook deliveries."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from fastapi.responses import FileResponse

from api.deps import CurrentTenant, QueueDep, SessionDep, SettingsDep
from api.downloads import archive_response
from api.errors import ERROR_RESPONSES
from api.schemas import (
    CheckpointId,
    CheckpointList,
    Cursor,
    EventList,
    FineTuneRequest,
    JobId,
    JobList,
    MetricList,
    WebhookDeliveryList,
)
from core import artifacts, checkpoints, jobs, webhook_outbox
from core.estimates import Estimate
from core.views import JobView, checkpoint_view, event_view, job_view, metric_view
from core.webhook_views import delivery_view

router = APIRouter(prefix="/finetune", tags=["fine-tune"], responses=ERROR_RESPONSES)

MAX_METRIC_ID = 2**63 - 1


def _new_job(body: FineTuneRequest) -> jobs.NewJob:
    return jobs.NewJob(
        base_model=body.base_model,
        training_file=body.training_file,
        validation_file=body.validation_file,
        hyperparameters=body.model_dump(mode="json")["hyperparameters"],
        webhook_url=str(body.webhook_url) if body.webhook_url else None,
        metadata=body.metadata,
        priority=body.priority,
        max_run_seconds=body.max_run_seconds,
        gpus=body.gpus,
    )


@router.post("", status_code=202, response_model=JobView)
def create_fine_tune(
    body: FineTuneRequest,
    response: Response,
    tenant: CurrentTenant,
    session: SessionDep,
    settings: SettingsDep,
    queue: QueueDep,
) -> JobView:
    """Validate, record the job with its estimate, and queue it (the message goes out once the row is committed)."""
    with session.begin():
        job = jobs.submit_job(session, settings, queue, tenant=tenant, new=_new_job(body))
    response.headers["Location"] = f"/finetune/{job.id}"
    return job_view(job)


@router.post("/estimate", response_model=Estimate)
def estimate_fine_tune(
    body: FineTuneRequest, tenant: CurrentTenant, session: SessionDep, settings: SettingsDep
) -> Estimate:
    """What the job would cost, before paying: tokens (the model's own tokenizer), "auto" resolved, steps,
    time, USD and finish time on the device a live worker has (else the configured one). Creates nothing."""
    with session.begin():
        return jobs.estimate_job(session, settings, tenant=tenant, new=_new_job(body))


@router.get("", response_model=JobList)
def list_fine_tunes(
    tenant: CurrentTenant,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    after: Annotated[Cursor | None, Query(description="id of the last job of the previous page")] = None,
) -> JobList:
    page = jobs.list_jobs(session, tenant=tenant, limit=limit, after=after)
    data = [job_view(job) for job in page.items]
    return JobList(data=data, has_more=page.has_more, next_cursor=data[-1].id if page.has_more else None)


@router.get("/{job_id}", response_model=JobView)
def get_fine_tune(job_id: JobId, tenant: CurrentTenant, session: SessionDep) -> JobView:
    return job_view(jobs.get_job(session, tenant=tenant, job_id=job_id))


@router.post("/{job_id}/cancel", response_model=JobView)
def cancel_fine_tune(job_id: JobId, tenant: CurrentTenant, session: SessionDep, queue: QueueDep) -> JobView:
    """Cancel: a queued job ends at once; a running one stops at its next training step."""
    with session.begin():
        job = jobs.cancel_job(session, queue, tenant=tenant, job_id=job_id)
    return job_view(job)


@router.post("/{job_id}/pause", response_model=JobView)
def pause_fine_tune(job_id: JobId, tenant: CurrentTenant, session: SessionDep, queue: QueueDep) -> JobView:
    """Pause: a queued job is held at once; a running one checkpoints at its next step and frees its GPU."""
    with session.begin():
        job = jobs.pause_job(session, queue, tenant=tenant, job_id=job_id)
    return job_view(job)


@router.post("/{job_id}/resume", response_model=JobView)
def resume_fine_tune(
    job_id: JobId, tenant: CurrentTenant, session: SessionDep, settings: SettingsDep, queue: QueueDep
) -> JobView:
    """Queue a paused job again (it continues from its checkpoint), or withdraw a pending pause."""
    with session.begin():
        job = jobs.resume_job(session, settings, queue, tenant=tenant, job_id=job_id)
    return job_view(job)


@router.get("/{job_id}/metrics", response_model=MetricList)
def get_metrics(
    job_id: JobId,
    tenant: CurrentTenant,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=10000)] = 1000,
    after: Annotated[int | None, Query(ge=0, le=MAX_METRIC_ID, description="next_cursor of the previous page")] = None,
) -> MetricList:
    jobs.get_job(session, tenant=tenant, job_id=job_id)
    page = jobs.job_metrics(session, job_id, after, limit)
    return MetricList(
        data=[metric_view(m) for m in page.items],
        has_more=page.has_more,
        next_cursor=page.items[-1].id if page.has_more else None,
    )


@router.get("/{job_id}/events", response_model=EventList)
def get_events(job_id: JobId, tenant: CurrentTenant, session: SessionDep) -> EventList:
    jobs.get_job(session, tenant=tenant, job_id=job_id)
    return EventList(data=[event_view(e) for e in jobs.job_events(session, job_id)])


@router.get("/{job_id}/webhooks", response_model=WebhookDeliveryList)
def get_webhook_deliveries(job_id: JobId, tenant: CurrentTenant, session: SessionDep) -> WebhookDeliveryList:
    """The job's webhook deliveries, in event order, each with its attempts."""
    jobs.get_job(session, tenant=tenant, job_id=job_id)
    deliveries = webhook_outbox.job_deliveries(session, job_id)
    attempts = webhook_outbox.delivery_attempts(session, [d.id for d in deliveries])
    return WebhookDeliveryList(data=[delivery_view(d, attempts[d.id]) for d in deliveries])


@router.get("/{job_id}/adapter", response_class=FileResponse)
def download_adapter(job_id: JobId, tenant: CurrentTenant, session: SessionDep, settings: SettingsDep) -> FileResponse:
    """The adapter with its tokenizer and model card, as a .tar (range requests; SHA-256 in X-Checksum-SHA256)."""
    return archive_response(artifacts.adapter_archive(session, settings, tenant=tenant, job_id=job_id))


@router.get("/{job_id}/merged", response_class=FileResponse)
def download_merged(job_id: JobId, tenant: CurrentTenant, session: SessionDep, settings: SettingsDep) -> FileResponse:
    """The merged model (when the job set merge_adapter), as a .tar."""
    return archive_response(artifacts.merged_archive(session, settings, tenant=tenant, job_id=job_id))


@router.get("/{job_id}/checkpoints", response_model=CheckpointList)
def get_checkpoints(
    job_id: JobId,
    tenant: CurrentTenant,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    after: Annotated[Cursor | None, Query(description="id of the last checkpoint of the previous page")] = None,
) -> CheckpointList:
    """Every checkpoint the job saved, newest first; those removed by retention say so."""
    jobs.get_job(session, tenant=tenant, job_id=job_id)
    page = checkpoints.list_checkpoints(session, job_id, limit=limit, after=after)
    data = [checkpoint_view(row) for row in page.items]
    return CheckpointList(data=data, has_more=page.has_more, next_cursor=data[-1].id if page.has_more else None)


@router.get("/{job_id}/checkpoints/{checkpoint_id}/archive", response_class=FileResponse)
def download_checkpoint(
    job_id: JobId, checkpoint_id: CheckpointId, tenant: CurrentTenant, session: SessionDep, settings: SettingsDep
) -> FileResponse:
    archive = artifacts.checkpoint_archive(session, settings, tenant=tenant, job_id=job_id, checkpoint_id=checkpoint_id)
    return archive_response(archive)

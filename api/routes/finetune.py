"""Fine-tune jobs: estimate, submit, read, list, cancel, pause, resume; metrics, events, checkpoints, downloads,
webhook deliveries."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from fastapi.responses import FileResponse
from sqlalchemy.orm import Session

from api.deps import CurrentTenant, QueueDep, ReaderDep, SessionDep, SettingsDep, WriterDep
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
from core.job_list_page import job_list_page
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
async def create_fine_tune(
    body: FineTuneRequest, response: Response, write: WriterDep, settings: SettingsDep, queue: QueueDep
) -> JobView:
    """Validate, record the job with its estimate, and queue it (the message goes out once the row is committed)."""
    new = _new_job(body)
    view = await write(
        lambda session, tenant: job_view(jobs.submit_job(session, settings, queue, tenant=tenant, new=new))
    )
    response.headers["Location"] = f"/finetune/{view.id}"
    return view


@router.post("/estimate", response_model=Estimate)
async def estimate_fine_tune(body: FineTuneRequest, write: WriterDep, settings: SettingsDep) -> Estimate:
    """What the job would cost, before paying: tokens (the model's own tokenizer), "auto" resolved, steps,
    time, USD and finish time on the device a live worker has (else the configured one). Creates nothing."""
    new = _new_job(body)
    return await write(lambda session, tenant: jobs.estimate_job(session, settings, tenant=tenant, new=new))


@router.get("", response_model=JobList)
async def list_fine_tunes(
    read: ReaderDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    after: Annotated[Cursor | None, Query(description="id of the last job of the previous page")] = None,
) -> Response:
    # Already JSON (core.job_list_page): the page is the JobList documented above, rendered without the models.
    body = read(lambda session, tenant: job_list_page(session, tenant=tenant, limit=limit, after=after))
    return Response(body, media_type="application/json")


@router.get("/{job_id}", response_model=JobView)
async def get_fine_tune(job_id: JobId, read: ReaderDep) -> JobView:
    return read(lambda session, tenant: job_view(jobs.get_job(session, tenant=tenant, job_id=job_id)))


@router.post("/{job_id}/cancel", response_model=JobView)
async def cancel_fine_tune(job_id: JobId, write: WriterDep, queue: QueueDep) -> JobView:
    """Cancel: a queued job ends at once; a running one stops at its next training step."""
    return await write(lambda session, tenant: job_view(jobs.cancel_job(session, queue, tenant=tenant, job_id=job_id)))


@router.post("/{job_id}/pause", response_model=JobView)
async def pause_fine_tune(job_id: JobId, write: WriterDep, queue: QueueDep) -> JobView:
    """Pause: a queued job is held at once; a running one checkpoints at its next step and frees its GPU."""
    return await write(lambda session, tenant: job_view(jobs.pause_job(session, queue, tenant=tenant, job_id=job_id)))


@router.post("/{job_id}/resume", response_model=JobView)
async def resume_fine_tune(job_id: JobId, write: WriterDep, settings: SettingsDep, queue: QueueDep) -> JobView:
    """Queue a paused job again (it continues from its checkpoint), or withdraw a pending pause."""
    return await write(
        lambda session, tenant: job_view(jobs.resume_job(session, settings, queue, tenant=tenant, job_id=job_id))
    )


@router.get("/{job_id}/metrics", response_model=MetricList)
async def get_metrics(
    job_id: JobId,
    read: ReaderDep,
    limit: Annotated[int, Query(ge=1, le=10000)] = 1000,
    after: Annotated[int | None, Query(ge=0, le=MAX_METRIC_ID, description="next_cursor of the previous page")] = None,
) -> MetricList:
    def page(session: Session, tenant: str) -> MetricList:
        jobs.get_job(session, tenant=tenant, job_id=job_id)
        found = jobs.job_metrics(session, job_id, after, limit)
        return MetricList(
            data=[metric_view(m) for m in found.items],
            has_more=found.has_more,
            next_cursor=found.items[-1].id if found.has_more else None,
        )

    return read(page)


@router.get("/{job_id}/events", response_model=EventList)
async def get_events(job_id: JobId, read: ReaderDep) -> EventList:
    def events(session: Session, tenant: str) -> EventList:
        jobs.get_job(session, tenant=tenant, job_id=job_id)
        return EventList(data=[event_view(e) for e in jobs.job_events(session, job_id)])

    return read(events)


@router.get("/{job_id}/webhooks", response_model=WebhookDeliveryList)
async def get_webhook_deliveries(job_id: JobId, read: ReaderDep) -> WebhookDeliveryList:
    """The job's webhook deliveries, in event order, each with its attempts."""

    def deliveries(session: Session, tenant: str) -> WebhookDeliveryList:
        jobs.get_job(session, tenant=tenant, job_id=job_id)
        found = webhook_outbox.job_deliveries(session, job_id)
        attempts = webhook_outbox.delivery_attempts(session, [d.id for d in found])
        return WebhookDeliveryList(data=[delivery_view(d, attempts[d.id]) for d in found])

    return read(deliveries)


@router.get("/{job_id}/adapter", response_class=FileResponse)
def download_adapter(job_id: JobId, tenant: CurrentTenant, session: SessionDep, settings: SettingsDep) -> FileResponse:
    """The adapter with its tokenizer and model card, as a .tar (range requests; SHA-256 in X-Checksum-SHA256)."""
    return archive_response(artifacts.adapter_archive(session, settings, tenant=tenant, job_id=job_id))


@router.get("/{job_id}/merged", response_class=FileResponse)
def download_merged(job_id: JobId, tenant: CurrentTenant, session: SessionDep, settings: SettingsDep) -> FileResponse:
    """The merged model (when the job set merge_adapter), as a .tar."""
    return archive_response(artifacts.merged_archive(session, settings, tenant=tenant, job_id=job_id))


@router.get("/{job_id}/checkpoints", response_model=CheckpointList)
async def get_checkpoints(
    job_id: JobId,
    read: ReaderDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    after: Annotated[Cursor | None, Query(description="id of the last checkpoint of the previous page")] = None,
) -> CheckpointList:
    """Every checkpoint the job saved, newest first; those removed by retention say so."""

    def page(session: Session, tenant: str) -> CheckpointList:
        jobs.get_job(session, tenant=tenant, job_id=job_id)
        found = checkpoints.list_checkpoints(session, job_id, limit=limit, after=after)
        data = [checkpoint_view(row) for row in found.items]
        return CheckpointList(data=data, has_more=found.has_more, next_cursor=data[-1].id if found.has_more else None)

    return read(page)


@router.get("/{job_id}/checkpoints/{checkpoint_id}/archive", response_class=FileResponse)
def download_checkpoint(
    job_id: JobId, checkpoint_id: CheckpointId, tenant: CurrentTenant, session: SessionDep, settings: SettingsDep
) -> FileResponse:
    archive = artifacts.checkpoint_archive(session, settings, tenant=tenant, job_id=job_id, checkpoint_id=checkpoint_id)
    return archive_response(archive)

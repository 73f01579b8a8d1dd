"""OpenAI-compatible fine-tuning jobs, on the same job service as /finetune."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy.orm import Session

from api.deps import CurrentTenant, QueueDep, ReaderDep, SessionDep, SettingsDep, WriterDep
from api.downloads import archive_response
from api.errors import ERROR_RESPONSES
from api.routes.v1.objects import (
    EVENT_PREFIX,
    CheckpointList,
    CreateFineTuningJob,
    FineTuningJob,
    FineTuningJobList,
    JobEventList,
    checkpoint_object,
    fine_tuning_job,
    job_event,
)
from api.schemas import CheckpointId, Cursor, JobId, WebhookUrl
from core import artifacts, checkpoints, jobs
from core.errors import InvalidRequest
from core.estimates import Estimate
from core.event_feed import list_feed
from core.models import Job
from core.openai_compat import tuneq_hyperparameters, validated_hyperparameters
from core.views import job_view

router = APIRouter(prefix="/fine_tuning/jobs", tags=["v1 fine-tuning"], responses=ERROR_RESPONSES)
MAX_METADATA_FILTERS = 16


class ServiceOptions(BaseModel):
    """The non-training part of the ``tuneq`` extra object."""

    model_config = ConfigDict(extra="forbid")

    priority: Annotated[int, Field(ge=-100, le=100)] = 0
    webhook_url: WebhookUrl | None = None
    max_run_seconds: Annotated[int, Field(ge=1, le=30 * 24 * 3600)] | None = None
    gpus: Annotated[int, Field(ge=1, le=1024)] = 1  # as on POST /finetune; the operator's max is checked on submit


def _service_options(tuneq: dict[str, object]) -> ServiceOptions:
    picked = {key: tuneq.pop(key) for key in list(ServiceOptions.model_fields) if key in tuneq}
    try:
        return ServiceOptions.model_validate(picked)
    except ValidationError as exc:
        field = f"tuneq.{exc.errors()[0]['loc'][0]}"
        raise InvalidRequest(f"{field}: {exc.errors()[0]['msg']}", param=field) from exc


def _view(job: Job) -> FineTuningJob:
    return fine_tuning_job(job, job_view(job), job.latest_metric)


@router.post("", response_model=FineTuningJob | Estimate)
async def create_job(
    body: CreateFineTuningJob,
    write: WriterDep,
    settings: SettingsDep,
    queue: QueueDep,
    dry_run: Annotated[
        bool,
        Query(description="tuneq extension: answer the job's estimate (fine_tune.estimate) and create nothing"),
    ] = False,
) -> FineTuningJob | Estimate:
    """Create a fine-tuning job; tuneq's LoRA/QLoRA options go in ``tuneq`` (``extra_body`` in the openai client).

    With ``?dry_run=true`` (``extra_query`` in the openai client) nothing is created or queued: the answer is
    the estimate, as ``POST /finetune/estimate`` gives it: tokens, resolved "auto", steps, time, cost, finish.
    """
    own = dict(body.tuneq or {})
    options = _service_options(own)
    hyperparameters = validated_hyperparameters(tuneq_hyperparameters(body.openai_hyperparameters(), own, body.seed))
    new = jobs.NewJob(
        base_model=body.model,
        training_file=body.training_file,
        validation_file=body.validation_file,
        hyperparameters=hyperparameters,
        webhook_url=str(options.webhook_url) if options.webhook_url else None,
        metadata=body.metadata,
        priority=options.priority,
        max_run_seconds=options.max_run_seconds,
        suffix=body.suffix,
        gpus=options.gpus,
    )

    def create(session: Session, tenant: str) -> FineTuningJob | Estimate:
        if dry_run:
            return jobs.estimate_job(session, settings, tenant=tenant, new=new)
        return _view(jobs.submit_job(session, settings, queue, tenant=tenant, new=new))

    return await write(create)


def _metadata_filter(request: Request) -> dict[str, str]:
    """``metadata[key]=value`` query parameters, as the openai client sends them."""
    pairs = {
        key[len("metadata[") : -1]: value
        for key, value in request.query_params.items()
        if key.startswith("metadata[") and key.endswith("]")
    }
    if len(pairs) > MAX_METADATA_FILTERS:
        raise InvalidRequest(f"at most {MAX_METADATA_FILTERS} metadata filters", param="metadata")
    return pairs


@router.get("", response_model=FineTuningJobList)
async def list_jobs(
    request: Request,
    read: ReaderDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    after: Annotated[Cursor | None, Query(description="id of the last job of the previous page")] = None,
) -> FineTuningJobList:
    """Newest first; filter with ``metadata[key]=value``."""
    metadata = _metadata_filter(request)

    def page(session: Session, tenant: str) -> FineTuningJobList:
        found = jobs.list_jobs(session, tenant=tenant, limit=limit, after=after, metadata=metadata)
        return FineTuningJobList(data=[_view(job) for job in found.items], has_more=found.has_more)

    return read(page)


@router.get("/{job_id}", response_model=FineTuningJob)
async def retrieve_job(job_id: JobId, read: ReaderDep) -> FineTuningJob:
    return read(lambda session, tenant: _view(jobs.get_job(session, tenant=tenant, job_id=job_id)))


@router.post("/{job_id}/cancel", response_model=FineTuningJob)
async def cancel_job(job_id: JobId, write: WriterDep, queue: QueueDep) -> FineTuningJob:
    """A queued or paused job ends at once; a running one stops at its next training step."""
    return await write(lambda session, tenant: _view(jobs.cancel_job(session, queue, tenant=tenant, job_id=job_id)))


@router.post("/{job_id}/pause", response_model=FineTuningJob)
async def pause_job(job_id: JobId, write: WriterDep, queue: QueueDep) -> FineTuningJob:
    """A queued job is held at once; a running one checkpoints at its next step and frees its GPU."""
    return await write(lambda session, tenant: _view(jobs.pause_job(session, queue, tenant=tenant, job_id=job_id)))


@router.post("/{job_id}/resume", response_model=FineTuningJob)
async def resume_job(job_id: JobId, write: WriterDep, settings: SettingsDep, queue: QueueDep) -> FineTuningJob:
    """Queue a paused job again; it continues from its checkpoint."""
    return await write(
        lambda session, tenant: _view(jobs.resume_job(session, settings, queue, tenant=tenant, job_id=job_id))
    )


@router.get("/{job_id}/events", response_model=JobEventList)
async def list_events(
    job_id: JobId,
    read: ReaderDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 20,
    after: Annotated[str | None, Query(max_length=64, description="id of the last event of the previous page")] = None,
) -> JobEventList:
    """Newest first: status messages and one metrics event per logged step."""
    cursor = after.removeprefix(EVENT_PREFIX) if after else None

    def page(session: Session, tenant: str) -> JobEventList:
        job = jobs.get_job(session, tenant=tenant, job_id=job_id)
        found = list_feed(session, job_id, limit=limit, after=cursor, total_steps=job.total_steps)
        return JobEventList(data=[job_event(e) for e in found.items], has_more=found.has_more)

    return read(page)


@router.get("/{job_id}/checkpoints", response_model=CheckpointList)
async def list_checkpoints(
    job_id: JobId,
    read: ReaderDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
    after: Annotated[Cursor | None, Query(description="id of the last checkpoint of the previous page")] = None,
) -> CheckpointList:
    """Every checkpoint the job saved, newest first; ``deleted`` ones were removed by retention."""

    def page(session: Session, tenant: str) -> CheckpointList:
        job = jobs.get_job(session, tenant=tenant, job_id=job_id)
        found = checkpoints.list_checkpoints(session, job_id, limit=limit, after=after)
        data = [checkpoint_object(job, row) for row in found.items]
        return CheckpointList(
            data=data,
            has_more=found.has_more,
            first_id=data[0].id if data else None,
            last_id=data[-1].id if data else None,
        )

    return read(page)


@router.get("/{job_id}/checkpoints/{checkpoint_id}/content", response_class=FileResponse)
def download_checkpoint(
    job_id: JobId, checkpoint_id: CheckpointId, tenant: CurrentTenant, session: SessionDep, settings: SettingsDep
) -> FileResponse:
    """The checkpoint's files as a .tar (range requests supported; SHA-256 in X-Checksum-SHA256)."""
    archive = artifacts.checkpoint_archive(session, settings, tenant=tenant, job_id=job_id, checkpoint_id=checkpoint_id)
    return archive_response(archive)

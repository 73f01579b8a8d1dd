"""OpenAI-shaped request and response bodies for /v1, and their conversion from tuneq's rows.

Shapes follow OpenAI's fine-tuning and files API (``object`` fields, Unix-second times, prefixed ids),
so the official ``openai`` client parses them; tuneq-only detail rides in a ``tuneq`` object.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from api.schemas import MetadataKey, MetadataValue, Reference
from core.db import utcnow
from core.estimates import Estimate
from core.event_feed import FeedEvent
from core.models import Checkpoint, File, Job, JobMetric
from core.openai_compat import fine_tuned_model, openai_hyperparameters
from core.states import JobStatus
from core.views import JobView

EVENT_PREFIX = "ftevent-"
AutoInt = Literal["auto"] | int


def unix(moment: datetime | None) -> int | None:
    return int(moment.timestamp()) if moment is not None else None


class OpenAIHyperparameters(BaseModel):
    model_config = ConfigDict(extra="forbid")

    n_epochs: Literal["auto"] | Annotated[int, Field(ge=1, le=100)] | None = None
    batch_size: Literal["auto"] | Annotated[int, Field(ge=1, le=1024)] | None = None
    learning_rate_multiplier: Literal["auto"] | Annotated[float, Field(gt=0, le=100)] | None = None


class SupervisedMethod(BaseModel):
    model_config = ConfigDict(extra="forbid")

    hyperparameters: OpenAIHyperparameters | None = None


class Method(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["supervised"] = Field(description="tuneq trains supervised (SFT) LoRA/QLoRA adapters")
    supervised: SupervisedMethod | None = None


class CreateFineTuningJob(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: Annotated[str, Field(min_length=1, max_length=512, description="hub id or model directory")]
    training_file: Reference
    validation_file: Reference | None = None
    hyperparameters: OpenAIHyperparameters | None = Field(default=None, description="deprecated by OpenAI: use method")
    method: Method | None = None
    suffix: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")] | None = None
    seed: Annotated[int, Field(ge=0, le=2**31 - 1)] | None = None
    metadata: Annotated[dict[MetadataKey, MetadataValue], Field(max_length=16)] | None = None
    integrations: Annotated[list[Any], Field(max_length=0, description="not supported; leave empty")] | None = None
    tuneq: dict[str, Any] | None = Field(
        default=None,
        description="tuneq's own options (pass with extra_body): any Hyperparameters field such as lora_r or "
        "quantization, plus priority, webhook_url, max_run_seconds, gpus",
    )

    def openai_hyperparameters(self) -> dict[str, Any]:
        from_method = self.method.supervised.hyperparameters if self.method and self.method.supervised else None
        if from_method is not None and self.hyperparameters is not None:
            from core.errors import InvalidRequest

            raise InvalidRequest("set hyperparameters or method.supervised.hyperparameters, not both", param="method")
        chosen = from_method or self.hyperparameters
        return chosen.model_dump(exclude_none=True) if chosen else {}


class FileObject(BaseModel):
    id: str
    object: Literal["file"] = "file"
    bytes: int
    created_at: int
    filename: str
    purpose: str
    status: Literal["processed"] = "processed"  # validated before it was kept
    expires_at: int | None = None
    status_details: str | None = None


class FileList(BaseModel):
    object: Literal["list"] = "list"
    data: list[FileObject]
    has_more: bool
    first_id: str | None
    last_id: str | None


class FileDeleted(BaseModel):
    id: str
    object: Literal["file"] = "file"
    deleted: bool = True


class JobError(BaseModel):
    code: str
    message: str
    param: str | None = None


class FineTuningJob(BaseModel):
    id: str
    object: Literal["fine_tuning.job"] = "fine_tuning.job"
    created_at: int
    finished_at: int | None
    error: JobError | None
    fine_tuned_model: str | None
    hyperparameters: dict[str, Any]
    method: dict[str, Any]
    model: str
    organization_id: str
    result_files: list[str]
    seed: int
    status: str
    trained_tokens: int | None
    training_file: str
    validation_file: str | None
    estimated_finish: int | None
    integrations: list[Any] = Field(default_factory=list)
    metadata: dict[str, Any] | None
    tuneq: JobView = Field(description="the native view: progress, cost, LoRA options, environment")


class FineTuningJobList(BaseModel):
    object: Literal["list"] = "list"
    data: list[FineTuningJob]
    has_more: bool


class JobEvent(BaseModel):
    id: str
    object: Literal["fine_tuning.job.event"] = "fine_tuning.job.event"
    created_at: int
    level: str
    message: str
    type: str
    data: dict[str, Any] | None


class JobEventList(BaseModel):
    object: Literal["list"] = "list"
    data: list[JobEvent]
    has_more: bool


class CheckpointObject(BaseModel):
    id: str
    object: Literal["fine_tuning.job.checkpoint"] = "fine_tuning.job.checkpoint"
    created_at: int
    fine_tuned_model_checkpoint: str
    fine_tuning_job_id: str
    metrics: dict[str, Any]
    step_number: int
    bytes: int
    deleted: bool = Field(description="true once retention removed its files; the record stays")


class CheckpointList(BaseModel):
    object: Literal["list"] = "list"
    data: list[CheckpointObject]
    has_more: bool
    first_id: str | None
    last_id: str | None


def file_object(record: File) -> FileObject:
    return FileObject(
        id=record.id,
        bytes=record.bytes,
        created_at=int(record.created_at.timestamp()),
        filename=record.filename,
        purpose=record.purpose,
    )


def _estimated_finish(job: Job, latest: JobMetric | None, estimate: Estimate | None) -> int | None:
    """Running: from the live ETA, else from its start and the estimate; queued: now plus the estimate."""
    if job.status == JobStatus.RUNNING and latest is not None and latest.eta_seconds is not None:
        return unix(utcnow() + timedelta(seconds=latest.eta_seconds))
    if estimate is None:
        return None
    if job.status == JobStatus.RUNNING and job.started_at is not None:
        return unix(job.started_at + timedelta(seconds=estimate.seconds))
    if job.status == JobStatus.QUEUED:
        return unix(utcnow() + timedelta(seconds=estimate.seconds))
    return None


def fine_tuning_job(job: Job, native: JobView, latest: JobMetric | None) -> FineTuningJob:
    hyperparameters = openai_hyperparameters(job.hyperparameters)
    error = JobError(code=job.error_code, message=job.error_message or "") if job.error_code else None
    return FineTuningJob(
        id=job.id,
        created_at=int(job.created_at.timestamp()),
        finished_at=unix(job.finished_at),
        error=error,
        fine_tuned_model=fine_tuned_model(job),
        hyperparameters=hyperparameters,
        method={"type": "supervised", "supervised": {"hyperparameters": hyperparameters}},
        model=job.base_model,
        organization_id=job.tenant,
        result_files=job.result_files or [],
        seed=int(job.hyperparameters.get("seed", 42)),
        status=job.status,
        trained_tokens=job.trained_tokens if job.status == JobStatus.SUCCEEDED else None,
        training_file=job.training_file,
        validation_file=job.validation_file,
        estimated_finish=_estimated_finish(job, latest, native.estimate),
        metadata=job.user_metadata,
        tuneq=native,
    )


def job_event(event: FeedEvent) -> JobEvent:
    return JobEvent(
        id=f"{EVENT_PREFIX}{event.id}",
        created_at=int(event.created_at.timestamp()),
        level=event.level,
        message=event.message,
        type=event.type,
        data=event.data,
    )


def checkpoint_object(job: Job, row: Checkpoint) -> CheckpointObject:
    model = fine_tuned_model(job) or f"ft:{job.base_model.rsplit('/', 1)[-1]}:{job.suffix or 'tuneq'}:{job.id}"
    return CheckpointObject(
        id=row.id,
        created_at=int(row.created_at.timestamp()),
        fine_tuned_model_checkpoint=f"{model}:ckpt-step-{row.step}",
        fine_tuning_job_id=job.id,
        metrics=row.metrics,
        step_number=row.step,
        bytes=row.bytes,
        deleted=row.deleted_at is not None,
    )

"""Public representations of jobs, files and metrics, shared by the API and webhooks."""

from __future__ import annotations

from datetime import datetime
from pathlib import PurePosixPath as Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError

from core.estimates import Estimate
from core.models import Checkpoint, File, Job, JobEvent, JobMetric


class ProgressView(BaseModel):
    step: int
    total_steps: int | None
    epoch: float | None
    percent: float | None
    estimated_total_steps: int | None = Field(description="the submit-time estimate's steps, beside the real ones")


class MetricView(BaseModel):
    attempt: int | None
    step: int
    epoch: float | None
    loss: float | None
    eval_loss: float | None
    token_accuracy: float | None
    eval_token_accuracy: float | None
    eta_seconds: float | None
    learning_rate: float | None
    grad_norm: float | None
    tokens_per_second: float | None
    trained_tokens: int | None
    peak_memory_bytes: int | None
    created_at: datetime


class CostView(BaseModel):
    gpu_seconds: float
    cost_usd: float
    estimated_seconds: float | None = Field(description="the submit-time estimate, beside what the job used")
    estimated_cost_usd: float | None


class ErrorView(BaseModel):
    code: str
    message: str


class EnvironmentView(BaseModel):
    device: str | None
    device_name: str | None
    dtype: str | None
    quantization: str | None


class JobView(BaseModel):
    id: str
    object: Literal["fine_tune.job"] = "fine_tune.job"
    status: str
    base_model: str
    training_file: str
    validation_file: str | None
    hyperparameters: dict[str, Any]
    webhook_url: str | None
    metadata: dict[str, Any] | None
    attempt: int
    max_attempts: int
    priority: int
    gpus: int = Field(description="GPUs of one host it trains on, data-parallel; batch_size is per GPU")
    worker_id: str | None
    cancel_requested_at: datetime | None
    pause_requested_at: datetime | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    progress: ProgressView
    latest_metrics: MetricView | None
    trained_tokens: int
    cost: CostView
    environment: EnvironmentView | None
    error: ErrorView | None
    adapter: str | None  # artifact name within the job ("adapter"); never a server path
    result: dict[str, Any] | None
    estimate: Estimate | None = Field(description="made at submit: tokens, resolved 'auto', steps, time, cost")


class FileView(BaseModel):
    id: str
    object: Literal["file"] = "file"
    filename: str
    purpose: str
    bytes: int
    sha256: str
    format: str
    line_count: int
    example_count: int
    created_at: datetime


class CheckpointView(BaseModel):
    id: str
    object: Literal["fine_tune.checkpoint"] = "fine_tune.checkpoint"
    step: int
    metrics: dict[str, Any]
    bytes: int
    created_at: datetime
    deleted_at: datetime | None  # set once checkpoint retention removed its files


class EventView(BaseModel):
    id: int
    created_at: datetime
    level: str
    message: str
    data: dict[str, Any] | None


def metric_view(metric: JobMetric) -> MetricView:
    return MetricView.model_validate(metric, from_attributes=True)


def stored_estimate(job: Job) -> Estimate | None:
    """The job's submit-time estimate; None for jobs from before estimates (or of a shape since changed)."""
    if job.estimate is None:
        return None
    try:
        return Estimate.model_validate(job.estimate)
    except ValidationError:
        return None


def progress_percent(step: int, total_steps: int | None) -> float | None:
    return round(100.0 * step / total_steps, 1) if total_steps else None


def adapter_name(adapter_path: str | None) -> str | None:
    """The artifact's name within the job ("adapter"): never a server path."""
    return Path(adapter_path).name if adapter_path else None


def job_view(job: Job) -> JobView:
    latest = job.latest_metric
    estimate = stored_estimate(job)
    return JobView(
        id=job.id,
        status=job.status,
        base_model=job.base_model,
        training_file=job.training_file,
        validation_file=job.validation_file,
        hyperparameters=job.hyperparameters,
        webhook_url=job.webhook_url,
        metadata=job.user_metadata,
        attempt=job.attempt,
        max_attempts=job.max_attempts,
        priority=job.priority,
        gpus=job.gpus,
        worker_id=job.worker_id,
        cancel_requested_at=job.cancel_requested_at,
        pause_requested_at=job.pause_requested_at,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        progress=ProgressView(
            step=job.step,
            total_steps=job.total_steps,
            epoch=job.epoch,
            percent=progress_percent(job.step, job.total_steps),
            estimated_total_steps=estimate.total_steps if estimate else None,
        ),
        latest_metrics=metric_view(latest) if latest else None,
        trained_tokens=job.trained_tokens,
        cost=CostView(
            gpu_seconds=job.gpu_seconds,
            cost_usd=job.cost_usd,
            estimated_seconds=estimate.seconds if estimate else None,
            estimated_cost_usd=estimate.cost_usd if estimate else None,
        ),
        environment=EnvironmentView.model_validate(job, from_attributes=True) if job.device else None,
        error=ErrorView(code=job.error_code, message=job.error_message or "") if job.error_code else None,
        adapter=adapter_name(job.adapter_path),
        result=job.result,
        estimate=estimate,
    )


def file_view(record: File) -> FileView:
    return FileView.model_validate(record, from_attributes=True)


def event_view(event: JobEvent) -> EventView:
    return EventView.model_validate(event, from_attributes=True)


def checkpoint_view(row: Checkpoint) -> CheckpointView:
    return CheckpointView.model_validate(row, from_attributes=True)

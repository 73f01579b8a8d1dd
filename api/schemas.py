"""HTTP request and list bodies (single resources use core.views)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path
from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, StringConstraints, UrlConstraints

from core.views import CheckpointView, EventView, FileView, JobView, MetricView
from core.webhook_views import WebhookDeliveryView, WebhookEndpointView
from trainer.config import Hyperparameters

# No control characters: they are never meaningful in these fields, and PostgreSQL refuses NUL in text.
NO_CONTROL = r"^[^\x00-\x1f\x7f]*$"
MetadataKey = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=NO_CONTROL)]
MetadataValue = Annotated[str, StringConstraints(max_length=512, pattern=NO_CONTROL)]
Reference = Annotated[str, StringConstraints(min_length=1, max_length=1024, pattern=NO_CONTROL)]
WebhookUrl = Annotated[AnyHttpUrl, UrlConstraints(max_length=2048)]
ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
JobId = Annotated[str, Path(pattern=ID_PATTERN, description="a job id, ftjob-…")]
WebhookEndpointId = Annotated[str, Path(pattern=ID_PATTERN, description="a webhook endpoint id, we-…")]
WebhookDeliveryId = Annotated[str, Path(pattern=ID_PATTERN, description="a webhook delivery id, whdel-…")]
FileId = Annotated[str, Path(pattern=ID_PATTERN, description="a file id, file-…")]
CheckpointId = Annotated[str, Path(pattern=ID_PATTERN, description="a checkpoint id, ftckpt-…")]
Cursor = Annotated[str, StringConstraints(pattern=ID_PATTERN)]


class FineTuneRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    base_model: Annotated[
        str,
        StringConstraints(min_length=1, max_length=512, strip_whitespace=True, pattern=NO_CONTROL),
        Field(description="hub id (e.g. Qwen/Qwen3-8B) or a model directory under the operator's model roots"),
    ]
    training_file: Annotated[Reference, Field(description="file id (or, where allowed, a path in your datasets dir)")]
    validation_file: Reference | None = None
    hyperparameters: Hyperparameters = Field(default_factory=Hyperparameters)
    webhook_url: WebhookUrl | None = None
    metadata: Annotated[dict[MetadataKey, MetadataValue], Field(max_length=16)] | None = None
    priority: Annotated[int, Field(ge=-100, le=100, description="higher runs sooner, within fair sharing")] = 0
    max_run_seconds: Annotated[int, Field(ge=1, le=30 * 24 * 3600, description="training time limit")] | None = None
    gpus: Annotated[
        int,
        Field(
            ge=1,
            le=1024,  # a sanity bound for the schema; the operator's TUNEQ_MAX_GPUS_PER_JOB is checked on submit
            description="GPUs of one host to train on, data-parallel (at most TUNEQ_MAX_GPUS_PER_JOB); "
            "batch_size is per GPU, so a step takes gpus x batch_size x gradient_accumulation_steps rows",
        ),
    ] = 1


class JobList(BaseModel):
    object: str = "list"
    data: list[JobView]
    has_more: bool
    next_cursor: str | None


class FileList(BaseModel):
    object: str = "list"
    data: list[FileView]
    has_more: bool
    next_cursor: str | None


class MetricList(BaseModel):
    object: str = "list"
    data: list[MetricView]
    has_more: bool
    next_cursor: int | None


class EventList(BaseModel):
    object: str = "list"
    data: list[EventView]


class WebhookEndpointRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: WebhookUrl
    event_types: (
        Annotated[
            list[Annotated[str, StringConstraints(max_length=64)]],
            Field(min_length=1, max_length=32, description="e.g. fine_tuning.job.succeeded; omit for every type"),
        ]
        | None
    ) = None
    description: Annotated[str, StringConstraints(max_length=512, pattern=NO_CONTROL)] | None = None


class WebhookEndpointList(BaseModel):
    object: str = "list"
    data: list[WebhookEndpointView]


class WebhookDeliveryList(BaseModel):
    object: str = "list"
    data: list[WebhookDeliveryView]


class CheckpointList(BaseModel):
    object: str = "list"
    data: list[CheckpointView]
    has_more: bool
    next_cursor: str | None

"""HTTP request and list bodies (single resources use core.views)."""

from __future__ import annotations

from typing import Annotated

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, StringConstraints

from core.views import EventView, FileView, JobView, MetricView
from trainer.config import Hyperparameters

MetadataKey = Annotated[str, StringConstraints(min_length=1, max_length=64)]
MetadataValue = Annotated[str, StringConstraints(max_length=512)]


class FineTuneRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    base_model: Annotated[
        str,
        StringConstraints(min_length=1, max_length=512, strip_whitespace=True),
        Field(description="hub id (e.g. Qwen/Qwen3-8B) or a local model directory"),
    ]
    training_file: Annotated[
        str, StringConstraints(min_length=1, max_length=1024), Field(description="file id or path under the data root")
    ]
    validation_file: Annotated[str, StringConstraints(min_length=1, max_length=1024)] | None = None
    hyperparameters: Hyperparameters = Field(default_factory=Hyperparameters)
    webhook_url: AnyHttpUrl | None = None
    metadata: Annotated[dict[MetadataKey, MetadataValue], Field(max_length=16)] | None = None
    priority: Annotated[int, Field(ge=-100, le=100, description="higher runs sooner, within fair sharing")] = 0
    max_run_seconds: Annotated[int, Field(ge=1, le=30 * 24 * 3600, description="training time limit")] | None = None


class JobList(BaseModel):
    object: str = "list"
    data: list[JobView]
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


class FileOut(FileView):
    pass

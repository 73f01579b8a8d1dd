"""What a job's live stream carries, and the queries that read it.

A stream sends three kinds of item: the job's events, its metric rows, and
snapshots of the job itself. Events and metrics are read by id, so a stream
position is the pair of the last event id and last metric id delivered; it is
the SSE event id (``e12.m40``), which makes a resumed stream exact.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from core.cost import cost_usd
from core.db import utcnow
from core.errors import InvalidRequest
from core.jobs import WITH_LATEST_METRIC
from core.models import Job, JobEvent, JobMetric
from core.settings import Settings
from core.states import JobStatus
from core.views import event_view, job_view, metric_view

POSITION = re.compile(r"^e(\d{1,19})\.m(\d{1,19})$")


class ItemKind(StrEnum):
    EVENT = "event"
    METRIC = "metric"
    JOB = "job"


@dataclass(frozen=True)
class StreamPosition:
    """The last event id and the last metric id a client has received."""

    event: int = 0
    metric: int = 0

    @classmethod
    def parse(cls, value: str | None) -> StreamPosition:
        if not value:
            return cls()
        match = POSITION.match(value.strip())
        if match is None:
            raise InvalidRequest(f"Last-Event-ID {value!r} is not a position of this stream (e12.m40)", "Last-Event-ID")
        return cls(int(match[1]), int(match[2]))

    def after(self, item: StreamItem) -> StreamPosition:
        if item.kind is ItemKind.EVENT:
            return StreamPosition(max(self.event, item.id), self.metric)
        if item.kind is ItemKind.METRIC:
            return StreamPosition(self.event, max(self.metric, item.id))
        return self

    def is_new(self, item: StreamItem) -> bool:
        if item.kind is ItemKind.EVENT:
            return item.id > self.event
        if item.kind is ItemKind.METRIC:
            return item.id > self.metric
        return True

    def __str__(self) -> str:
        return f"e{self.event}.m{self.metric}"


@dataclass(frozen=True)
class StreamItem:
    kind: ItemKind
    job_id: str
    id: int  # the row id of an event or metric; 0 for a job snapshot
    created_at: datetime
    payload: dict[str, Any] = field(compare=False)

    @property
    def is_terminal_job(self) -> bool:
        return self.kind is ItemKind.JOB and JobStatus(self.payload["status"]).is_terminal


def event_item(row: JobEvent) -> StreamItem:
    return StreamItem(ItemKind.EVENT, row.job_id, row.id, row.created_at, event_view(row).model_dump(mode="json"))


def metric_item(row: JobMetric) -> StreamItem:
    payload = {"id": row.id, **metric_view(row).model_dump(mode="json")}
    return StreamItem(ItemKind.METRIC, row.job_id, row.id, row.created_at, payload)


def job_items(session: Session, settings: Settings, job_ids: Iterable[str]) -> list[StreamItem]:
    """Snapshots of jobs, with what a running job has cost so far (its row holds only finished attempts)."""
    rows = session.scalars(select(Job).where(Job.id.in_(list(job_ids))).options(WITH_LATEST_METRIC)).all()
    items = []
    for job in rows:
        payload = job_view(job).model_dump(mode="json")
        payload["cost_so_far_usd"] = _cost_so_far(settings, job)
        items.append(StreamItem(ItemKind.JOB, job.id, 0, utcnow(), payload))
    return items


def _cost_so_far(settings: Settings, job: Job) -> float:
    if job.status != JobStatus.RUNNING or job.started_at is None or job.device is None:
        return job.cost_usd
    running = (utcnow() - job.started_at).total_seconds()
    return round(job.cost_usd + cost_usd(settings, job.device, job.device_name or "", running), 6)


def in_order(items: Iterable[StreamItem]) -> list[StreamItem]:
    """Events and metrics interleaved by time; each kind stays in id order."""
    return sorted(items, key=lambda item: (item.created_at, item.kind is ItemKind.METRIC, item.id))


def backlog(session: Session, settings: Settings, job_id: str, position: StreamPosition) -> list[StreamItem]:
    """A job's events and metrics after ``position``, then a snapshot of the job."""
    events = session.scalars(
        select(JobEvent).where(JobEvent.job_id == job_id, JobEvent.id > position.event).order_by(JobEvent.id)
    ).all()
    metrics = session.scalars(
        select(JobMetric).where(JobMetric.job_id == job_id, JobMetric.id > position.metric).order_by(JobMetric.id)
    ).all()
    rows = in_order([*map(event_item, events), *map(metric_item, metrics)])
    return [*rows, *job_items(session, settings, [job_id])]


def newest_ids(session: Session) -> StreamPosition:
    """Where a watcher starting now begins: everything before is read as backlog."""
    event = session.scalar(select(JobEvent.id).order_by(JobEvent.id.desc()).limit(1)) or 0
    metric = session.scalar(select(JobMetric.id).order_by(JobMetric.id.desc()).limit(1)) or 0
    return StreamPosition(event, metric)


def new_rows(
    session: Session, position: StreamPosition, missing_events: Sequence[int], missing_metrics: Sequence[int]
) -> tuple[list[StreamItem], list[StreamItem]]:
    """Events and metrics of every job after ``position``, plus any of the ``missing`` ids that are now visible.

    Ids are handed out at insert and become visible at commit, so a row can
    appear after a higher id did; the watcher looks again for such gaps.
    """
    events = session.scalars(
        select(JobEvent)
        .where(or_(JobEvent.id > position.event, JobEvent.id.in_(list(missing_events))))
        .order_by(JobEvent.id)
    ).all()
    metrics = session.scalars(
        select(JobMetric)
        .where(or_(JobMetric.id > position.metric, JobMetric.id.in_(list(missing_metrics))))
        .order_by(JobMetric.id)
    ).all()
    return [event_item(row) for row in events], [metric_item(row) for row in metrics]

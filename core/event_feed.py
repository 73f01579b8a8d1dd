"""A job's events as one feed, newest first: message events and per-step metrics events together.

Messages (``job_events``) and metrics (``job_metrics``) stay in their own tables; the feed merges them
by time. A feed id names the table and the row (``e123``, ``m45``), so a cursor is stable.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, literal, or_, select, union_all
from sqlalchemy.orm import Session

from core.errors import InvalidRequest
from core.models import JobEvent, JobMetric
from core.pages import Page

MESSAGE, METRICS = "e", "m"


@dataclass(frozen=True)
class FeedEvent:
    id: str  # "e<job_events.id>" or "m<job_metrics.id>"
    created_at: datetime
    level: str
    type: str  # "message" | "metrics"
    message: str
    data: dict[str, Any] | None


def _metrics_event(row: JobMetric) -> FeedEvent:
    data = {
        "step": row.step,
        "total_steps": None,
        "attempt": row.attempt,
        "train_loss": row.loss,
        "train_mean_token_accuracy": row.token_accuracy,
        "valid_loss": row.eval_loss,
        "valid_mean_token_accuracy": row.eval_token_accuracy,
        "learning_rate": row.learning_rate,
        "trained_tokens": row.trained_tokens,
    }
    parts = [f"loss={row.loss:.4f}" if row.loss is not None else None]
    parts.append(f"valid_loss={row.eval_loss:.4f}" if row.eval_loss is not None else None)
    summary = ", ".join(p for p in parts if p)
    return FeedEvent(f"{METRICS}{row.id}", row.created_at, "info", "metrics", f"Step {row.step}: {summary}", data)


def _message_event(row: JobEvent) -> FeedEvent:
    level = "warn" if row.level == "warning" else row.level
    return FeedEvent(f"{MESSAGE}{row.id}", row.created_at, level, "message", row.message, row.data)


def _parse(cursor: str) -> tuple[str, int]:
    kind, number = cursor[:1], cursor[1:]
    if kind not in (MESSAGE, METRICS) or not number.isdigit():
        raise InvalidRequest(f"after {cursor!r} is not an event id of this job", param="after")
    return kind, int(number)


def list_feed(
    session: Session, job_id: str, *, limit: int, after: str | None, total_steps: int | None
) -> Page[FeedEvent]:
    """Newest first; ``after`` is the id of the last event of the previous page (without its ``ftevent-`` prefix)."""
    messages = select(literal(MESSAGE).label("kind"), JobEvent.id.label("id"), JobEvent.created_at.label("at")).where(
        JobEvent.job_id == job_id
    )
    metrics = select(literal(METRICS).label("kind"), JobMetric.id.label("id"), JobMetric.created_at.label("at")).where(
        JobMetric.job_id == job_id
    )
    feed = union_all(messages, metrics).subquery()
    query = select(feed.c.kind, feed.c.id)
    if after is not None:
        kind, number = _parse(after)
        model = JobEvent if kind == MESSAGE else JobMetric
        at = session.scalar(select(model.created_at).where(model.id == number, model.job_id == job_id))
        if at is None:
            raise InvalidRequest(f"after {after!r} is not an event id of this job", param="after")
        query = query.where(
            or_(
                feed.c.at < at,
                and_(feed.c.at == at, or_(feed.c.kind < kind, and_(feed.c.kind == kind, feed.c.id < number))),
            )
        )
    keys = session.execute(
        query.order_by(feed.c.at.desc(), feed.c.kind.desc(), feed.c.id.desc()).limit(limit + 1)
    ).all()
    page_keys = keys[:limit]
    event_ids = [row_id for kind, row_id in page_keys if kind == MESSAGE]
    metric_ids = [row_id for kind, row_id in page_keys if kind == METRICS]
    events = {e.id: e for e in session.scalars(select(JobEvent).where(JobEvent.id.in_(event_ids)))}
    metric_rows = {m.id: m for m in session.scalars(select(JobMetric).where(JobMetric.id.in_(metric_ids)))}
    items = []
    for kind, row_id in page_keys:
        if kind == MESSAGE:
            items.append(_message_event(events[row_id]))
        else:
            event = _metrics_event(metric_rows[row_id])
            assert event.data is not None
            event.data["total_steps"] = total_steps
            items.append(event)
    return Page(items=items, has_more=len(keys) > limit)

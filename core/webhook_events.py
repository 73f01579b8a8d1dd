"""Webhook events of a job, and the outbox rows that carry them to each subscribed endpoint.

``core.jobs.transition`` calls ``record_status_event`` in the transaction that
changes the status, so a committed change always has its deliveries and a
rolled-back one never does. Nothing is sent here: a dispatcher sends later.

Event types are ``fine_tuning.job.<status>`` (OpenAI's naming), derived from
the target status, so a new state in ``core.states`` has its event at once.
Who gets which events:
- a registered endpoint: every status event, or those in its ``event_types``;
- a job's own ``webhook_url``: only the terminal ones (succeeded, failed,
  cancelled), as OpenAI sends for fine-tuning jobs.
"""

from __future__ import annotations

import json
from datetime import datetime
from enum import StrEnum
from pathlib import PurePosixPath
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.db import utcnow
from core.ids import new_id
from core.models import Job, WebhookDelivery, WebhookEndpoint
from core.states import JobStatus

EVENT_TYPE_PREFIX = "fine_tuning.job."
EVENT_PREFIX = "evt"
DELIVERY_PREFIX = "whdel"


class DeliveryStatus(StrEnum):
    PENDING = "pending"  # waiting for its next attempt (or its first)
    SENDING = "sending"  # claimed by a dispatcher until its lease expires
    DELIVERED = "delivered"  # the receiver answered 2xx
    FAILED = "failed"  # out of attempts, 410 Gone, or its endpoint was disabled


def event_type_of(status: JobStatus) -> str:
    return f"{EVENT_TYPE_PREFIX}{status.value}"


ALL_EVENT_TYPES = tuple(event_type_of(status) for status in JobStatus)


def event_payload(job: Job, event_id: str, event_type: str, created_at: datetime) -> dict[str, Any]:
    """The body: small and stable; the receiver fetches the full job with ``GET /finetune/{id}``."""
    data: dict[str, Any] = {
        "id": job.id,
        "object": "fine_tuning.job",
        "status": job.status,
        "adapter": PurePosixPath(job.adapter_path).name if job.adapter_path else None,
        "error": {"code": job.error_code, "message": job.error_message or ""} if job.error_code else None,
        "metadata": job.user_metadata,
    }
    return {
        "id": event_id,
        "object": "event",
        "type": event_type,
        "created_at": int(created_at.timestamp()),
        "data": data,
    }


def _subscribed_endpoints(session: Session, tenant: str, event_type: str) -> list[WebhookEndpoint]:
    query = select(WebhookEndpoint).where(WebhookEndpoint.tenant == tenant, WebhookEndpoint.disabled_at.is_(None))
    return [e for e in session.scalars(query) if e.event_types is None or event_type in e.event_types]


def record_status_event(session: Session, job: Job, status: JobStatus, sequence: int) -> str | None:
    """Write one outbox row per endpoint subscribed to this status change; returns the event id, if any."""
    event_type = event_type_of(status)
    targets: list[tuple[str | None, str]] = [
        (endpoint.id, endpoint.url) for endpoint in _subscribed_endpoints(session, job.tenant, event_type)
    ]
    if job.webhook_url and status.is_terminal:
        targets.append((None, job.webhook_url))
    if not targets:
        return None
    now = utcnow()
    event_id = new_id(EVENT_PREFIX)
    payload = json.dumps(event_payload(job, event_id, event_type, now), separators=(",", ":"))
    for endpoint_id, url in targets:
        session.add(
            WebhookDelivery(
                id=new_id(DELIVERY_PREFIX),
                tenant=job.tenant,
                event_id=event_id,
                event_type=event_type,
                job_id=job.id,
                sequence=sequence,
                endpoint_id=endpoint_id,
                url=url,
                payload=payload,
                status=DeliveryStatus.PENDING.value,
                attempts=0,
                next_attempt_at=now,
                created_at=now,
            )
        )
    return event_id

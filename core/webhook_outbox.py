"""The webhook outbox from the dispatcher's side: claim due deliveries, record what an attempt did.

Claiming is safe with any number of dispatchers on any number of hosts: due
rows are selected ``FOR UPDATE SKIP LOCKED`` (PostgreSQL; SQLite has one
writer at a time) and taken with a compare-and-set UPDATE that gives the
claimer a lease. A dispatcher that dies mid-send loses the row when its lease
expires, and another sends it again with the same ``webhook-id``.

Per job and endpoint, events go out in order: a delivery is not due while an
earlier event of its job for the same endpoint is still pending or sending.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, or_, select, update
from sqlalchemy.orm import Session, aliased

from core.db import utcnow
from core.errors import Conflict, WebhookDeliveryNotFound
from core.jobs import add_event
from core.metrics.recorded import WebhookOutcome, record_webhook_delivery
from core.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from core.settings import Settings
from core.webhook_endpoints import tenant_secret
from core.webhook_events import DeliveryStatus
from core.webhook_signing import signing_secrets

log = logging.getLogger(__name__)

MAX_RETRY_AFTER = timedelta(hours=24)  # a receiver's Retry-After is honoured up to this
JITTER = 0.2  # +-20 %: receivers that failed together are not all retried in the same second


@dataclass(frozen=True)
class ClaimedDelivery:
    """What a dispatcher needs to send one attempt, read while it held the row."""

    id: str
    event_id: str
    job_id: str
    url: str
    payload: str
    attempt: int
    secrets: list[str]


@dataclass(frozen=True)
class AttemptResult:
    attempted_at: datetime
    status_code: int | None
    duration_ms: int
    error: str | None = None
    retry_after: timedelta | None = None

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def _claimable(now: datetime) -> ColumnElement[bool]:
    d = WebhookDelivery
    due = and_(d.status == DeliveryStatus.PENDING.value, d.next_attempt_at <= now)
    abandoned = and_(d.status == DeliveryStatus.SENDING.value, d.lease_expires_at < now)
    return or_(due, abandoned)


def _waits_for_an_earlier_event() -> ColumnElement[bool]:
    earlier = aliased(WebhookDelivery)
    return (
        select(earlier.id)
        .where(
            earlier.job_id == WebhookDelivery.job_id,
            earlier.endpoint_id.is_not_distinct_from(WebhookDelivery.endpoint_id),
            earlier.sequence < WebhookDelivery.sequence,
            earlier.status.in_([DeliveryStatus.PENDING.value, DeliveryStatus.SENDING.value]),
        )
        .exists()
    )


def _secrets_for(session: Session, delivery: WebhookDelivery, now: datetime) -> list[str]:
    if delivery.endpoint_id is None:
        return signing_secrets(tenant_secret(session, delivery.tenant), now)
    endpoint = session.get(WebhookEndpoint, delivery.endpoint_id)
    assert endpoint is not None  # the foreign key deletes deliveries with their endpoint
    return signing_secrets(endpoint, now)


def claim_due(session: Session, settings: Settings, limit: int) -> list[ClaimedDelivery]:
    """Take up to ``limit`` due deliveries for this dispatcher, each with a lease and its attempt number."""
    now = utcnow()
    query = (
        select(WebhookDelivery)
        .where(_claimable(now), ~_waits_for_an_earlier_event())
        .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.sequence)
        .limit(limit)
        .with_for_update(skip_locked=True, of=WebhookDelivery)
    )
    claimed: list[ClaimedDelivery] = []
    for row in session.scalars(query).all():
        taken = session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id == row.id, _claimable(now))
            .values(
                status=DeliveryStatus.SENDING.value,
                attempts=WebhookDelivery.attempts + 1,
                lease_expires_at=now + timedelta(seconds=settings.webhook_lease_seconds),
            )
            .execution_options(synchronize_session=False)
        )
        if taken.rowcount != 1:  # type: ignore[attr-defined]
            continue  # another dispatcher took it between our read and our write (SQLite has no row locks)
        session.refresh(row)
        claimed.append(
            ClaimedDelivery(
                row.id, row.event_id, row.job_id, row.url, row.payload, row.attempts, _secrets_for(session, row, now)
            )
        )
    return claimed


def _retry_delay(settings: Settings, attempt: int, retry_after: timedelta | None) -> timedelta | None:
    """The wait before the attempt after ``attempt``; None when that was the last one."""
    delays = settings.webhook_retry_delays_seconds
    if attempt > len(delays):
        return None
    delay = timedelta(seconds=delays[attempt - 1] * random.uniform(1 - JITTER, 1 + JITTER))
    if retry_after is not None:
        delay = max(delay, min(retry_after, MAX_RETRY_AFTER))
    return delay


def _disable_endpoint(session: Session, delivery: WebhookDelivery, reason: str, now: datetime) -> None:
    """The receiver said 410 Gone: stop sending there, and tell the jobs whose events will not arrive."""
    session.execute(
        update(WebhookEndpoint)
        .where(WebhookEndpoint.id == delivery.endpoint_id)
        .values(disabled_at=now, disabled_reason=reason)
    )
    pending = session.scalars(
        select(WebhookDelivery).where(
            WebhookDelivery.endpoint_id == delivery.endpoint_id,
            WebhookDelivery.status == DeliveryStatus.PENDING.value,
        )
    ).all()
    for other in pending:
        _fail(session, other, f"endpoint {delivery.endpoint_id} was disabled: {reason}", now)


def _fail(session: Session, delivery: WebhookDelivery, reason: str, now: datetime) -> None:
    delivery.status = DeliveryStatus.FAILED.value
    delivery.finished_at = now
    delivery.lease_expires_at = None
    delivery.last_error = reason
    add_event(
        session,
        delivery.job_id,
        f"webhook {delivery.event_type} to {delivery.url} failed for good: {reason}",
        level="warning",
        data={"delivery_id": delivery.id, "event_id": delivery.event_id, "attempts": delivery.attempts},
    )
    record_webhook_delivery(WebhookOutcome.FAILED)


def record_attempt(
    session: Session, settings: Settings, claimed: ClaimedDelivery, result: AttemptResult, dispatcher: str
) -> None:
    """Log the attempt, then deliver, reschedule or fail the delivery (only while this claim still holds it)."""
    delivery = session.get(WebhookDelivery, claimed.id, with_for_update=True)
    if delivery is None:
        return  # its endpoint was deleted meanwhile
    session.add(
        WebhookAttempt(
            delivery_id=claimed.id,
            attempted_at=result.attempted_at,
            status_code=result.status_code,
            duration_ms=result.duration_ms,
            error=result.error,
            dispatcher=dispatcher,
        )
    )
    if delivery.status != DeliveryStatus.SENDING.value or delivery.attempts != claimed.attempt:
        log.warning("delivery %s was reclaimed while attempt %d ran; keeping the log only", claimed.id, claimed.attempt)
        return
    now = utcnow()
    delivery.last_status_code = result.status_code
    delivery.last_error = result.error
    if result.delivered:
        delivery.status = DeliveryStatus.DELIVERED.value
        delivery.finished_at = now
        delivery.lease_expires_at = None
        record_webhook_delivery(WebhookOutcome.DELIVERED)
        return
    if result.status_code == 410:
        reason = "the receiver answered 410 Gone"
        _fail(session, delivery, reason, now)
        if delivery.endpoint_id is not None:
            _disable_endpoint(session, delivery, reason, now)
        return
    delay = _retry_delay(settings, delivery.attempts, result.retry_after)
    if delay is None:
        _fail(session, delivery, f"{delivery.attempts} attempts; last: {result.error}", now)
        return
    delivery.status = DeliveryStatus.PENDING.value
    delivery.next_attempt_at = now + delay
    delivery.lease_expires_at = None
    record_webhook_delivery(WebhookOutcome.RETRYING)


def job_deliveries(session: Session, job_id: str) -> Sequence[WebhookDelivery]:
    query = select(WebhookDelivery).where(WebhookDelivery.job_id == job_id)
    return session.scalars(query.order_by(WebhookDelivery.sequence, WebhookDelivery.id)).all()


def delivery_attempts(session: Session, delivery_ids: Sequence[str]) -> dict[str, list[WebhookAttempt]]:
    """The attempt log of several deliveries in one query, oldest attempt first."""
    found: dict[str, list[WebhookAttempt]] = {delivery_id: [] for delivery_id in delivery_ids}
    if delivery_ids:
        query = select(WebhookAttempt).where(WebhookAttempt.delivery_id.in_(delivery_ids)).order_by(WebhookAttempt.id)
        for attempt in session.scalars(query):
            found[attempt.delivery_id].append(attempt)
    return found


def get_delivery(session: Session, *, tenant: str, delivery_id: str) -> WebhookDelivery:
    delivery = session.get(WebhookDelivery, delivery_id)
    if delivery is None or delivery.tenant != tenant:
        raise WebhookDeliveryNotFound(f"no webhook delivery with id {delivery_id!r}", param="id")
    return delivery


def redeliver(session: Session, *, tenant: str, delivery_id: str) -> WebhookDelivery:
    """Send a delivery again now, with the same ``webhook-id`` and a fresh round of retries."""
    delivery = get_delivery(session, tenant=tenant, delivery_id=delivery_id)
    if delivery.status == DeliveryStatus.SENDING.value:
        raise Conflict(f"delivery {delivery_id} is being sent right now; ask again once it has an outcome")
    if delivery.endpoint_id is not None:
        endpoint = session.get(WebhookEndpoint, delivery.endpoint_id)
        if endpoint is not None and endpoint.disabled_at is not None:
            raise Conflict(
                f"endpoint {endpoint.id} is disabled ({endpoint.disabled_reason}); register the URL again to use it"
            )
    if delivery.status != DeliveryStatus.PENDING.value:
        delivery.attempts = 0
        delivery.finished_at = None
    delivery.status = DeliveryStatus.PENDING.value
    delivery.next_attempt_at = utcnow()
    return delivery

"""A tenant's webhook endpoints and its default signing secret.

Endpoints get every job status event unless they name ``event_types``. The
tenant's default secret signs deliveries to a job's own ``webhook_url``; it is
made on first need. A rotated secret keeps signing beside the new one for
``webhook_secret_overlap_seconds`` so receivers can switch without a gap.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from core.db import utcnow
from core.errors import InvalidRequest, WebhookEndpointNotFound
from core.ids import new_id
from core.models import TenantWebhookSecret, WebhookEndpoint
from core.settings import Settings
from core.url_guard import check_webhook_url
from core.webhook_events import ALL_EVENT_TYPES
from core.webhook_signing import new_secret, rotate

ENDPOINT_PREFIX = "we"


@dataclass
class NewEndpoint:
    url: str
    event_types: list[str] | None = None  # None: every event type
    description: str | None = None


def check_event_types(event_types: list[str] | None) -> list[str] | None:
    if event_types is None:
        return None
    unknown = sorted(set(event_types) - set(ALL_EVENT_TYPES))
    if unknown or not event_types:
        raise InvalidRequest(
            f"event_types must be a non-empty list of {', '.join(ALL_EVENT_TYPES)} (or omitted for all); "
            f"unknown: {', '.join(unknown) or 'none given'}",
            param="event_types",
        )
    return sorted(set(event_types))


def create_endpoint(session: Session, settings: Settings, *, tenant: str, new: NewEndpoint) -> WebhookEndpoint:
    """Register an endpoint; its secret is in the returned row, to be shown to the caller once."""
    check_webhook_url(new.url, settings.allow_private_webhooks, param="url")
    endpoint = WebhookEndpoint(
        id=new_id(ENDPOINT_PREFIX),
        tenant=tenant,
        url=new.url,
        description=new.description,
        event_types=check_event_types(new.event_types),
        secret=new_secret(),
        created_at=utcnow(),
    )
    session.add(endpoint)
    session.flush()
    return endpoint


def get_endpoint(session: Session, *, tenant: str, endpoint_id: str) -> WebhookEndpoint:
    """A tenant's endpoint; another tenant's id is as unknown as one that never existed."""
    endpoint = session.get(WebhookEndpoint, endpoint_id)
    if endpoint is None or endpoint.tenant != tenant:
        raise WebhookEndpointNotFound(f"no webhook endpoint with id {endpoint_id!r}", param="id")
    return endpoint


def list_endpoints(session: Session, *, tenant: str) -> Sequence[WebhookEndpoint]:
    query = select(WebhookEndpoint).where(WebhookEndpoint.tenant == tenant)
    return session.scalars(query.order_by(WebhookEndpoint.created_at, WebhookEndpoint.id)).all()


def delete_endpoint(session: Session, *, tenant: str, endpoint_id: str) -> None:
    """Remove an endpoint; its deliveries, pending ones included, go with it."""
    session.delete(get_endpoint(session, tenant=tenant, endpoint_id=endpoint_id))


def rotate_endpoint_secret(session: Session, settings: Settings, *, tenant: str, endpoint_id: str) -> WebhookEndpoint:
    endpoint = get_endpoint(session, tenant=tenant, endpoint_id=endpoint_id)
    session.refresh(endpoint, with_for_update=True)  # two rotations at once: the second keeps the first's secret
    rotate(endpoint, utcnow(), timedelta(seconds=settings.webhook_secret_overlap_seconds))
    return endpoint


def tenant_secret(session: Session, tenant: str) -> TenantWebhookSecret:
    """The tenant's default secret, created on first need (concurrent first needs agree on one)."""
    found = session.get(TenantWebhookSecret, tenant)
    if found is not None:
        return found
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    values = {"tenant": tenant, "secret": new_secret(), "created_at": utcnow()}
    session.execute(dialect.insert(TenantWebhookSecret).values(**values).on_conflict_do_nothing())
    created = session.get(TenantWebhookSecret, tenant, populate_existing=True)
    assert created is not None
    return created


def rotate_tenant_secret(session: Session, settings: Settings, *, tenant: str) -> TenantWebhookSecret:
    record = tenant_secret(session, tenant)
    session.refresh(record, with_for_update=True)
    rotate(record, utcnow(), timedelta(seconds=settings.webhook_secret_overlap_seconds))
    return record

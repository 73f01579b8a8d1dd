"""Public representations of webhook endpoints, secrets, deliveries and their attempts.

A secret appears only where it was just made (an endpoint's creation or
rotation) or is asked for on purpose (``GET /webhook_secret``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel

from core.models import TenantWebhookSecret, WebhookAttempt, WebhookDelivery, WebhookEndpoint


class WebhookEndpointView(BaseModel):
    id: str
    object: Literal["webhook_endpoint"] = "webhook_endpoint"
    url: str
    description: str | None
    event_types: list[str] | None  # None: every event type
    created_at: datetime
    disabled_at: datetime | None
    disabled_reason: str | None
    previous_secret_expires_at: datetime | None


class WebhookEndpointWithSecretView(WebhookEndpointView):
    secret: str  # shown once: store it now


class TenantWebhookSecretView(BaseModel):
    object: Literal["webhook_secret"] = "webhook_secret"
    secret: str
    previous_secret_expires_at: datetime | None


class WebhookAttemptView(BaseModel):
    attempted_at: datetime
    status_code: int | None
    duration_ms: int
    error: str | None


class WebhookDeliveryView(BaseModel):
    id: str
    object: Literal["webhook_delivery"] = "webhook_delivery"
    event_id: str
    event_type: str
    job_id: str
    endpoint_id: str | None  # None: the job's own webhook_url
    url: str
    status: str
    attempts: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    finished_at: datetime | None
    attempt_log: list[WebhookAttemptView]


def endpoint_view(endpoint: WebhookEndpoint) -> WebhookEndpointView:
    return WebhookEndpointView.model_validate(endpoint, from_attributes=True)


def endpoint_with_secret_view(endpoint: WebhookEndpoint) -> WebhookEndpointWithSecretView:
    return WebhookEndpointWithSecretView.model_validate(endpoint, from_attributes=True)


def tenant_secret_view(record: TenantWebhookSecret) -> TenantWebhookSecretView:
    return TenantWebhookSecretView.model_validate(record, from_attributes=True)


def delivery_view(delivery: WebhookDelivery, attempts: list[WebhookAttempt]) -> WebhookDeliveryView:
    pending = delivery.status == "pending"
    return WebhookDeliveryView(
        id=delivery.id,
        event_id=delivery.event_id,
        event_type=delivery.event_type,
        job_id=delivery.job_id,
        endpoint_id=delivery.endpoint_id,
        url=delivery.url,
        status=delivery.status,
        attempts=delivery.attempts,
        next_attempt_at=delivery.next_attempt_at if pending else None,
        last_status_code=delivery.last_status_code,
        last_error=delivery.last_error,
        created_at=delivery.created_at,
        finished_at=delivery.finished_at,
        attempt_log=[WebhookAttemptView.model_validate(a, from_attributes=True) for a in attempts],
    )

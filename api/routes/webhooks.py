"""Webhook endpoints, the tenant's default signing secret, and redelivery.

Every delivery is signed the Standard Webhooks way (``webhook-id``,
``webhook-timestamp``, ``webhook-signature``): deliveries to an endpoint with
that endpoint's secret, deliveries to a job's own ``webhook_url`` with the
tenant's default secret from ``GET /webhook_secret``.
"""

from __future__ import annotations

from fastapi import APIRouter, Response

from api.deps import CurrentTenant, ReaderDep, SessionDep, SettingsDep
from api.errors import ERROR_RESPONSES
from api.schemas import WebhookDeliveryId, WebhookEndpointId, WebhookEndpointList, WebhookEndpointRequest
from core import webhook_endpoints, webhook_outbox
from core.db import transaction
from core.webhook_views import (
    TenantWebhookSecretView,
    WebhookDeliveryView,
    WebhookEndpointView,
    WebhookEndpointWithSecretView,
    delivery_view,
    endpoint_view,
    endpoint_with_secret_view,
    tenant_secret_view,
)

router = APIRouter(tags=["webhooks"], responses=ERROR_RESPONSES)


@router.post("/webhook_endpoints", status_code=201, response_model=WebhookEndpointWithSecretView)
def create_webhook_endpoint(
    body: WebhookEndpointRequest, response: Response, tenant: CurrentTenant, session: SessionDep, settings: SettingsDep
) -> WebhookEndpointWithSecretView:
    """Register a URL for job events; the answer holds its signing secret, shown this once."""
    new = webhook_endpoints.NewEndpoint(url=str(body.url), event_types=body.event_types, description=body.description)
    with session.begin():
        endpoint = webhook_endpoints.create_endpoint(session, settings, tenant=tenant, new=new)
    response.headers["Location"] = f"/webhook_endpoints/{endpoint.id}"
    return endpoint_with_secret_view(endpoint)


@router.get("/webhook_endpoints", response_model=WebhookEndpointList)
async def list_webhook_endpoints(read: ReaderDep) -> WebhookEndpointList:
    return read(
        lambda session, tenant: WebhookEndpointList(
            data=[endpoint_view(e) for e in webhook_endpoints.list_endpoints(session, tenant=tenant)]
        )
    )


@router.get("/webhook_endpoints/{endpoint_id}", response_model=WebhookEndpointView)
async def get_webhook_endpoint(endpoint_id: WebhookEndpointId, read: ReaderDep) -> WebhookEndpointView:
    return read(
        lambda session, tenant: endpoint_view(
            webhook_endpoints.get_endpoint(session, tenant=tenant, endpoint_id=endpoint_id)
        )
    )


@router.delete("/webhook_endpoints/{endpoint_id}", status_code=204)
def delete_webhook_endpoint(endpoint_id: WebhookEndpointId, tenant: CurrentTenant, session: SessionDep) -> Response:
    """Remove an endpoint; deliveries not yet sent to it are dropped."""
    with session.begin():
        webhook_endpoints.delete_endpoint(session, tenant=tenant, endpoint_id=endpoint_id)
    return Response(status_code=204)


@router.post("/webhook_endpoints/{endpoint_id}/rotate_secret", response_model=WebhookEndpointWithSecretView)
def rotate_webhook_endpoint_secret(
    endpoint_id: WebhookEndpointId, tenant: CurrentTenant, session: SessionDep, settings: SettingsDep
) -> WebhookEndpointWithSecretView:
    """A new secret, shown this once; the old one keeps signing beside it until previous_secret_expires_at."""
    with session.begin():
        endpoint = webhook_endpoints.rotate_endpoint_secret(session, settings, tenant=tenant, endpoint_id=endpoint_id)
    return endpoint_with_secret_view(endpoint)


@router.get("/webhook_secret", response_model=TenantWebhookSecretView)
def get_webhook_secret(tenant: CurrentTenant, settings: SettingsDep) -> TenantWebhookSecretView:
    """The secret that signs deliveries to jobs' own webhook_url (made on first request)."""
    # This read may write (the first one makes the secret), so it has a transaction of its own: the
    # request's session is an autocommit one, as every GET's is (api.deps.get_session).
    with transaction(settings.resolved_database_url) as session:
        return tenant_secret_view(webhook_endpoints.tenant_secret(session, tenant))


@router.post("/webhook_secret/rotate", response_model=TenantWebhookSecretView)
def rotate_webhook_secret(tenant: CurrentTenant, session: SessionDep, settings: SettingsDep) -> TenantWebhookSecretView:
    """A new default secret; the old one keeps signing beside it until previous_secret_expires_at."""
    with session.begin():
        return tenant_secret_view(webhook_endpoints.rotate_tenant_secret(session, settings, tenant=tenant))


@router.post("/webhook_deliveries/{delivery_id}/redeliver", response_model=WebhookDeliveryView)
def redeliver_webhook(
    delivery_id: WebhookDeliveryId, tenant: CurrentTenant, session: SessionDep
) -> WebhookDeliveryView:
    """Send a delivery again now, with the same webhook-id (receivers deduplicate on it)."""
    with session.begin():
        delivery = webhook_outbox.redeliver(session, tenant=tenant, delivery_id=delivery_id)
    return delivery_view(delivery, webhook_outbox.delivery_attempts(session, [delivery.id])[delivery.id])

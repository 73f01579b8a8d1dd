"""One attempt of one delivery: check the URL, sign, POST, and say what happened.

Never raises for anything the receiver or the network does; every outcome is
an ``AttemptResult`` for the outbox to log and act on.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

import httpcore
import httpx

from core.db import utcnow
from core.errors import InvalidRequest
from core.settings import Settings
from core.url_guard import GuardedNetwork, check_webhook_url
from core.webhook_outbox import AttemptResult, ClaimedDelivery
from core.webhook_signing import signed_headers

USER_AGENT = "tuneq-webhooks/1"


def parse_retry_after(value: str | None, now: datetime) -> timedelta | None:
    """``Retry-After`` as seconds or as an HTTP date; None if absent or unreadable."""
    if not value:
        return None
    if value.strip().isdigit():
        return timedelta(seconds=int(value.strip()))
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    when = when if when.tzinfo else when.replace(tzinfo=UTC)
    return max(timedelta(0), when - now)


def webhook_client(settings: Settings) -> httpx.Client:
    """The client that sends webhooks: no redirects, and connections only to addresses the URL guard allows.

    httpx takes no network backend, but its transport's connection pool does: the pool is rebuilt with
    httpx's own defaults (TLS context, limits) around ``GuardedNetwork``. Proxies from the environment
    (HTTPS_PROXY) are their own transports: through one, the guard checks the URL at send time only.
    """
    transport = httpx.HTTPTransport()
    limits = httpx.Limits()
    transport._pool = httpcore.ConnectionPool(
        ssl_context=httpx.create_ssl_context(),
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry,
        network_backend=GuardedNetwork(settings.allow_private_webhooks),
    )
    return httpx.Client(transport=transport, timeout=settings.webhook_timeout_seconds, follow_redirects=False)


def send_attempt(client: httpx.Client, settings: Settings, delivery: ClaimedDelivery) -> AttemptResult:
    """POST the signed event once; redirects are not followed (the URL guard checked this URL only)."""
    now = utcnow()
    try:  # again at send time: the name may resolve somewhere internal by now
        check_webhook_url(delivery.url, settings.allow_private_webhooks)
    except InvalidRequest as exc:
        return AttemptResult(now, None, 0, f"refused to send: {exc.message}")
    headers = {
        **signed_headers(delivery.secrets, delivery.event_id, now, delivery.payload),
        "content-type": "application/json",
        "user-agent": USER_AGENT,
    }
    started = time.monotonic()
    try:
        # Streamed and not read: the answer's status is all that counts, whatever size its body.
        with client.stream("POST", delivery.url, content=delivery.payload, headers=headers) as response:
            status = response.status_code
            retry_after = parse_retry_after(response.headers.get("retry-after"), utcnow())
    except httpx.HTTPError as exc:
        elapsed = int((time.monotonic() - started) * 1000)
        return AttemptResult(now, None, elapsed, f"{type(exc).__name__}: {exc}")
    elapsed = int((time.monotonic() - started) * 1000)
    error = None if 200 <= status < 300 else f"receiver answered {status}"
    return AttemptResult(now, status, elapsed, error, retry_after)

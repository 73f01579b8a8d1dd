"""Shed load at the door: at most ``api_max_concurrent_requests`` requests in flight.

A request waits for a slot at most ``api_max_queue_wait_seconds``, then is
answered 503 with Retry-After, in the error envelope. Without this, a burst
of clients piles up in the threadpool behind the database pool and every one
of them waits (the measured failure: 30 s waits, then plain 500s). Requests
past the door hold a slot until their response is sent, so the database pool
(sized by ``database_pool_size`` + ``database_max_overflow``) is never asked
for more connections than it has.
"""

from __future__ import annotations

import asyncio

from starlette.types import ASGIApp, Receive, Scope, Send

from api.errors import error_response
from core.settings import Settings

RETRY_AFTER_SECONDS = 1  # a slot frees as soon as any in-flight request ends: usually well within a second
UNLIMITED_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})  # probes must answer under load too


class ConcurrencyLimit:
    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.wait = settings.api_max_queue_wait_seconds
        self.slots = asyncio.Semaphore(settings.api_max_concurrent_requests)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in UNLIMITED_PATHS:
            await self.app(scope, receive, send)
            return
        try:
            await asyncio.wait_for(self.slots.acquire(), timeout=self.wait)
        except TimeoutError:
            message = "the service is at capacity; retry after the number of seconds in Retry-After"
            response = error_response(503, message, "overloaded", headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
            await response(scope, receive, send)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            self.slots.release()

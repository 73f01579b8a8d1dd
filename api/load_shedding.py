"""Shed load at the door: at most ``api_max_concurrent_requests`` requests in flight.

A request waits for a slot at most ``api_max_queue_wait_seconds``, then is
answered 503 with Retry-After, in the error envelope. Without this, a burst
of clients piles up in the threadpool behind the database pool and every one
of them waits (the measured failure: 30 s waits, then plain 500s). Requests
past the door hold a slot until their response is sent, so the database pool
(sized by ``database_pool_size`` + ``database_max_overflow``) is never asked
for more connections than it has.

Reads run on the event loop (api.deps.Reader), so under overload requests
also wait in the loop's ready queue, before any slot is asked for. A probe
(a callback queued behind them) tells how far behind the loop is: while one
has waited longer than ``api_max_queue_wait_seconds``, requests are answered
503 at once, at the door and again just before a read would hold the loop.
That keeps the wait of those served bounded, and a shed answer costs
microseconds, so the backlog drains.
"""

from __future__ import annotations

import asyncio

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from api.errors import error_response
from core.settings import Settings

RETRY_AFTER_SECONDS = 1  # a slot frees as soon as any in-flight request ends: usually well within a second
UNLIMITED_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})  # probes must answer under load too


class LoopBacklog:
    """How long the event loop has been behind: the age of a probe queued behind the work ready to run.

    One probe at a time: a request that finds none queues one (``loop.call_soon``), which runs only once
    everything ready before it has run. While it waits, its age is how long a request ready now waits for
    its turn. The request that queued it is never judged by it: the loop was not behind when it came, and
    the probe's age is then mostly its own work (a process's first request spends a second setting up).
    """

    OWNER = "tuneq.loop_probe"  # scope key: the probe a request queued itself

    def __init__(self) -> None:
        self.probe_queued_at: float | None = None

    def too_far_behind(self, scope: Scope, max_wait: float) -> bool:
        loop = asyncio.get_running_loop()
        now = loop.time()
        if self.probe_queued_at is None:
            self.probe_queued_at = scope[self.OWNER] = now
            loop.call_soon(self._landed)
            return False
        if scope.get(self.OWNER) == self.probe_queued_at:
            return False
        return now - self.probe_queued_at > max_wait

    def _landed(self) -> None:
        self.probe_queued_at = None


class Overloaded(Exception):
    """Raised where work is about to hold the event loop while it is already too far behind (api.deps.Reader)."""


class ConcurrencyLimit:
    def __init__(self, app: ASGIApp, settings: Settings, backlog: LoopBacklog) -> None:
        self.app = app
        self.wait = settings.api_max_queue_wait_seconds
        self.slots = asyncio.Semaphore(settings.api_max_concurrent_requests)
        self.backlog = backlog

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in UNLIMITED_PATHS:
            await self.app(scope, receive, send)
            return
        if self.backlog.too_far_behind(scope, self.wait):
            await overloaded_response()(scope, receive, send)
            return
        try:
            if self.slots.locked():
                await asyncio.wait_for(self.slots.acquire(), timeout=self.wait)
            else:
                await self.slots.acquire()  # free: taken without yielding to the loop (wait_for would)
        except TimeoutError:
            await overloaded_response()(scope, receive, send)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            self.slots.release()


def overloaded_response() -> JSONResponse:
    message = "the service is at capacity; retry after the number of seconds in Retry-After"
    return error_response(503, message, "overloaded", headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


async def _overloaded(_: Request, __: Exception) -> JSONResponse:
    return overloaded_response()


def install_load_shedding(app: FastAPI, settings: Settings) -> None:
    """The door (outermost middleware) and the loop-backlog check that readers on the loop share with it."""
    backlog = LoopBacklog()
    app.state.loop_backlog = backlog
    app.add_exception_handler(Overloaded, _overloaded)
    app.add_middleware(ConcurrencyLimit, settings=settings, backlog=backlog)

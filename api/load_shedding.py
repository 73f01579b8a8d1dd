"""Shed load at the door: at most ``api_max_concurrent_requests`` requests being answered at once.

A request waits at most ``api_max_queue_wait_seconds`` in all, counted from
when it may have arrived, then is answered 503 with Retry-After, in the
error envelope. Without this, a burst
of clients piles up in the threadpool behind the database pool and every one
of them waits (the measured failure: 30 s waits, then plain 500s). A request
holds its slot until its answer starts, so the database pool (sized by
``database_pool_size`` + ``database_max_overflow``) is never asked for more
connections than it has. Not while the body goes out: an event stream stays
open for hours and a download goes at the client's pace, and with slots held
that long, a few dashboards left open answered every other request 503.

Writes (submit, estimate, cancel, pause, resume) also take one of
``api_max_concurrent_writes`` write slots (``WriteSlots``), within the same
budget (two waits of the full time each let a submit's p99 reach 0.5 s at
200 clients): each is milliseconds of Python in a threadpool thread, and twenty of
them at once in one process spent the CPU on contention for the GIL.

Reads run on the event loop (api.deps.Reader), so under overload requests
also wait in the loop's ready queue, before any slot is asked for. A probe
(a callback queued behind them) tells how far behind the loop is: while one
has waited longer than ``api_max_queue_wait_seconds``, requests are answered
503 at once, at the door and again just before a read would hold the loop.
That keeps the wait of those served bounded, and a shed answer costs
microseconds, so the backlog drains.

The probe sees only requests the loop has read. While it runs a long round
of work, requests on open connections wait unread in the kernel; the loop's
selector tells since when each may have waited (api.serving.TimedSelector),
and the door counts the budget from then. Measured at 200 clients: list
pages waited ~250 ms unread, then ~250 ms more in the ready queue, p99
0.5-0.6 s; with the budget from arrival, p99 0.26-0.38 s.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import error_response
from api.slots import Slots
from core.settings import Settings

RETRY_AFTER_SECONDS = 1  # a slot frees as soon as any in-flight request ends: usually well within a second
UNLIMITED_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})  # probes must answer under load too
UNREAD_SINCE = "tuneq.unread_since"  # scope key: since when the request may have waited unread (api.serving)
FOUND_ALONE = "tuneq.found_alone"  # scope key: the loop found its input with no other socket ready (api.serving)
WAIT_UNTIL = "tuneq.wait_until"  # scope key: by when the request must hold its slots, or be shed


def wait_left(scope: Scope) -> float:
    """Seconds the request may still wait for a slot: one budget from its arrival, for every slot it takes."""
    return float(scope[WAIT_UNTIL]) - asyncio.get_running_loop().time()


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
        self.slots = Slots(settings.api_max_concurrent_requests)
        self.backlog = backlog

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in UNLIMITED_PATHS:
            await self.app(scope, receive, send)
            return
        now = asyncio.get_running_loop().time()
        since = scope.get(UNREAD_SINCE, now)
        if scope.get(FOUND_ALONE) and self.slots.all_free:
            # Shedding what waited unread serves what waited behind it sooner. Found alone with nothing in flight,
            # it waited for the CPU, not behind other requests (a lone poll on a host busy training was shed).
            since = now
        scope[WAIT_UNTIL] = since + self.wait
        if wait_left(scope) < 0 or self.backlog.too_far_behind(scope, self.wait):
            await overloaded_response()(scope, receive, send)
            return
        if not await self.slots.take(wait_left(scope)):
            await overloaded_response()(scope, receive, send)
            return
        held = True

        def release() -> None:
            nonlocal held
            if held:
                held = False
                self.slots.give_back()

        async def send_then_release(message: Message) -> None:
            if message["type"] == "http.response.start":
                release()  # the answer is made; what is left is paced by the client (streams, downloads)
            await send(message)

        try:
            await self.app(scope, receive, send_then_release)
        finally:
            release()


class WriteSlots:
    """At most ``api_max_concurrent_writes`` writes of one process in the threadpool at once (api.deps.Writer).

    A write is a few milliseconds of Python, run in a thread because it may wait on files, DNS and Redis.
    Twenty at once in one process mostly contended for the GIL: submits at 200 clients on two processes
    completed 207-221/s with 20 in flight each, 269-293/s with 4, at a lower p99 (BENCHMARKS.md).
    """

    def __init__(self, settings: Settings) -> None:
        self.slots = Slots(settings.api_max_concurrent_writes)

    @asynccontextmanager
    async def held(self, scope: Scope) -> AsyncIterator[None]:
        """A write slot for the block; Overloaded (503) if none frees within what is left of the request's wait."""
        if not await self.slots.take(wait_left(scope)):
            raise Overloaded
        try:
            yield
        finally:
            self.slots.give_back()


def overloaded_response() -> JSONResponse:
    message = "the service is at capacity; retry after the number of seconds in Retry-After"
    return error_response(503, message, "overloaded", headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


async def _overloaded(_: Request, __: Exception) -> JSONResponse:
    return overloaded_response()


def install_load_shedding(app: FastAPI, settings: Settings) -> None:
    """The door (outermost middleware) and the loop-backlog check that readers on the loop share with it."""
    backlog = LoopBacklog()
    app.state.loop_backlog = backlog
    app.state.write_slots = WriteSlots(settings)
    app.add_exception_handler(Overloaded, _overloaded)
    app.add_middleware(ConcurrencyLimit, settings=settings, backlog=backlog)

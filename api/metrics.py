"""``/metrics`` for Prometheus, and the request latency every route records.

``/metrics`` is unauthenticated, like the probes: operators scrape it from
inside the cluster, and it shows counts and timings, never job contents. Keep
it off the public network (see docs/deployment.md).
"""

from __future__ import annotations

import time

from fastapi import APIRouter, FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.metrics.exposition import render
from core.metrics.recorded import record_request

router = APIRouter(tags=["health"])


@router.get("/metrics", include_in_schema=False)
def metrics(request: Request) -> Response:
    registry = request.app.state.metrics_registry
    return Response(render(registry), media_type=CONTENT_TYPE_LATEST)


class RequestLatency:
    """Time from a request's arrival to its response's start, by route template.

    Measured to the start rather than the end of the response, so a long
    event stream counts as one quick answer, not as hours of latency.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()

        async def timed_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                elapsed = time.perf_counter() - started
                record_request(scope["method"], _route_template(scope), message["status"], elapsed)
            await send(message)

        await self.app(scope, receive, timed_send)


def _route_template(scope: Scope) -> str:
    route = scope.get("route")
    # Unmatched paths share one label: raw paths would make a series per probe of a scanner.
    return str(getattr(route, "path", "unmatched"))


def install_metrics(app: FastAPI) -> None:
    app.add_middleware(RequestLatency)
    app.include_router(router)

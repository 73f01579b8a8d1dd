"""A job's live stream: Server-Sent Events of its events, metrics and status, resumable by Last-Event-ID."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from api.deps import CurrentTenant, SessionDep, SettingsDep
from api.errors import ERROR_RESPONSES
from api.job_feed import JobFeed, job_feed
from api.schemas import JobId
from core import event_stream, jobs
from core.db import transaction
from core.event_stream import StreamItem, StreamPosition
from core.settings import Settings

router = APIRouter(prefix="/finetune", tags=["fine-tune"], responses=ERROR_RESPONSES)

STREAM_DESCRIPTION = """Server-Sent Events, until the job ends:

- `event: job`: the job (as `GET /finetune/{id}`, plus `cost_so_far_usd`), first and whenever it changed;
- `event: event`: one of its events; `event: metric`: one metrics row (with its `id`);
- `event: end`: the job is over and everything was sent; the server closes the stream.

Event and metric messages carry an SSE id `e<last event id>.m<last metric id>`: reconnect with it as
`Last-Event-ID` (or `?last_event_id=`) to receive exactly what came after. Idle streams get `: keepalive`
comment lines."""


@router.get(
    "/{job_id}/stream",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "the event stream"}},
    description=STREAM_DESCRIPTION,
)
async def stream_fine_tune(
    job_id: JobId,
    request: Request,
    tenant: CurrentTenant,
    session: SessionDep,
    settings: SettingsDep,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
    resume_from: Annotated[
        str | None, Query(alias="last_event_id", description="for clients that cannot set headers")
    ] = None,
) -> StreamingResponse:
    """Follow a job live."""
    position = StreamPosition.parse(last_event_id or resume_from)
    await run_in_threadpool(jobs.get_job, session, tenant=tenant, job_id=job_id)  # 404 before the stream starts
    session.close()  # a stream may stay open for hours: its database connection goes back to the pool now
    messages = _messages(job_feed(request.app, settings), settings, job_id, position)
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(messages, media_type="text/event-stream", headers=headers)


def _backlog(settings: Settings, job_id: str, position: StreamPosition) -> list[StreamItem]:
    with transaction(settings.resolved_database_url) as session:
        return event_stream.backlog(session, settings, job_id, position)


def _format(item: StreamItem, position: StreamPosition) -> str:
    lines = [f"event: {item.kind.value}"]
    if item.id:
        lines.append(f"id: {position}")
    lines.append(f"data: {json.dumps(item.payload, separators=(',', ':'))}")
    return "\n".join(lines) + "\n\n"


async def _messages(feed: JobFeed, settings: Settings, job_id: str, position: StreamPosition) -> AsyncIterator[str]:
    yield "retry: 2000\n\n"
    async with feed.subscribe(job_id) as queue:
        # Subscribed first, backlog second: a row is in one or the other (or both, and sent once).
        pending = await run_in_threadpool(_backlog, settings, job_id, position)
        while True:
            for item in pending:
                if not position.is_new(item):
                    continue
                position = position.after(item)
                yield _format(item, position)
                if item.is_terminal_job:
                    yield "event: end\ndata: {}\n\n"
                    return
            try:
                pending = [await asyncio.wait_for(queue.get(), timeout=settings.stream_heartbeat_seconds)]
            except TimeoutError:
                pending = []
                yield ": keepalive\n\n"
                continue
            while not queue.empty():
                pending.append(queue.get_nowait())

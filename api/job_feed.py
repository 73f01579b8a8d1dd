"""One watcher per API process feeds every open job stream.

However many clients follow jobs, one task polls the database for new job
events and metric rows (id greater than the last seen, every
``stream_poll_seconds``) and hands each row to the streams of its job. It runs
only while some stream is open; ``polls`` and ``queries`` count its work.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from sqlalchemy.exc import SQLAlchemyError

from core import event_stream
from core.db import transaction
from core.event_stream import StreamItem, StreamPosition
from core.settings import Settings

log = logging.getLogger(__name__)

# A row id skipped by a poll is looked for again this long (its transaction may still commit).
GAP_WAIT_SECONDS = 10.0
MAX_GAPS = 1000  # ids looked for again after one poll, at most
QUERIES_PER_POLL = 2  # events and metrics; plus one for job snapshots when a followed job changed


class JobFeed:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._subscribers: dict[str, set[asyncio.Queue[StreamItem]]] = {}
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self._position = StreamPosition()
        self._gaps: dict[tuple[str, int], float] = {}
        self.polls = 0
        self.queries = 0

    @property
    def subscriber_count(self) -> int:
        return sum(len(queues) for queues in self._subscribers.values())

    @asynccontextmanager
    async def subscribe(self, job_id: str) -> AsyncIterator[asyncio.Queue[StreamItem]]:
        """A queue that receives every row of ``job_id`` written after the watcher's start position.

        On return the watcher has its position, so rows older than it can be
        read as backlog without a gap between the two.
        """
        queue: asyncio.Queue[StreamItem] = asyncio.Queue()
        self._subscribers.setdefault(job_id, set()).add(queue)
        try:
            if self._task is None:
                self._ready.clear()
                self._task = asyncio.create_task(self._run(), name="job-feed")
            await self._ready.wait()
            yield queue
        finally:
            queues = self._subscribers.get(job_id, set())
            queues.discard(queue)
            if not queues:
                self._subscribers.pop(job_id, None)

    async def _run(self) -> None:
        try:
            self._position = await asyncio.to_thread(self._query_start)
            self._gaps.clear()
            self._ready.set()
            while self._subscribers:
                await asyncio.sleep(self._settings.stream_poll_seconds)
                try:
                    await self._poll()
                except SQLAlchemyError as exc:  # the database is away: keep streams open, try again
                    log.warning("job feed poll failed: %s", exc)
        finally:
            self._task = None

    def _query_start(self) -> StreamPosition:
        with transaction(self._settings.resolved_database_url) as session:
            return event_stream.newest_ids(session)

    async def _poll(self) -> None:
        self.polls += 1
        followed = set(self._subscribers)
        items = await asyncio.to_thread(self._query_new, followed)
        for item in items:
            for queue in self._subscribers.get(item.job_id, ()):
                queue.put_nowait(item)

    def _query_new(self, followed: set[str]) -> list[StreamItem]:
        missing_events = [row_id for kind, row_id in self._gaps if kind == "event"]
        missing_metrics = [row_id for kind, row_id in self._gaps if kind == "metric"]
        with transaction(self._settings.resolved_database_url) as session:
            events, metrics = event_stream.new_rows(session, self._position, missing_events, missing_metrics)
            self.queries += QUERIES_PER_POLL
            self._note_gaps("event", self._position.event, [item.id for item in events])
            self._note_gaps("metric", self._position.metric, [item.id for item in metrics])
            self._position = StreamPosition(
                max([self._position.event, *(item.id for item in events)]),
                max([self._position.metric, *(item.id for item in metrics)]),
            )
            changed = {item.job_id for item in [*events, *metrics]} & followed
            snapshots = []
            if changed:
                snapshots = event_stream.job_items(session, self._settings, changed)
                self.queries += 1
        return [*event_stream.in_order([*events, *metrics]), *snapshots]

    def _note_gaps(self, kind: str, last: int, seen: list[int]) -> None:
        """Forget gaps now filled or too old; remember ids skipped between ``last`` and the newest seen."""
        now = time.monotonic()
        for row_id in seen:
            self._gaps.pop((kind, row_id), None)
        for key, deadline in list(self._gaps.items()):
            if deadline < now:
                del self._gaps[key]
        present = set(seen)
        newest = max(seen, default=last)
        for row_id in range(max(last + 1, newest - MAX_GAPS), newest):
            if row_id not in present:
                self._gaps[(kind, row_id)] = now + GAP_WAIT_SECONDS


def job_feed(app: FastAPI, settings: Settings) -> JobFeed:
    """This process's feed, made on first use (one per app)."""
    feed: JobFeed | None = getattr(app.state, "job_feed", None)
    if feed is None:
        feed = app.state.job_feed = JobFeed(settings)
    return feed

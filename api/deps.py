"""Dependencies shared by the routes, as Annotated aliases so signatures read plainly."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Annotated, TypeVar

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from rq import Queue
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker
from starlette.types import Scope

from api.load_shedding import LoopBacklog, Overloaded, WriteSlots
from core.api_keys import authenticate
from core.db import (
    loop_read_session_factory,
    read_session_factory,
    read_with_one_retry,
    session_factory,
    write_session_factory,
)
from core.errors import AuthenticationFailed
from core.settings import AuthMode, Settings

T = TypeVar("T")

log = logging.getLogger(__name__)

bearer = HTTPBearer(auto_error=False, description="an API key from `tuneq keys create`")

# Requests that only read: their session runs in autocommit (core.db.read_session_factory).
READ_METHODS = frozenset({"GET", "HEAD"})


# Dependencies that do no I/O are ``async def``: FastAPI runs every sync dependency in its threadpool, and
# those hops were a fifth of a status read's CPU. Only work that can block (the database) goes to a thread.


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_session(request: Request) -> AsyncIterator[Session]:
    """The request's one session (the key lookup uses it too); it connects lazily, on its first statement.

    A read's session is in autocommit: closing it only hands the connection back to the pool, with no
    round trip, so it is closed here rather than after another hop to the threadpool.
    """
    settings: Settings = request.app.state.settings
    url = settings.resolved_database_url
    if request.method in READ_METHODS:
        session = read_session_factory(url)()
        try:
            yield session
        finally:
            session.close()
        return
    session = session_factory(url)()
    try:
        yield session
    finally:
        await run_in_threadpool(session.close)  # may roll back: network I/O


async def get_queue(request: Request) -> Queue:
    queue: Queue = request.app.state.queue
    return queue


SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionDep = Annotated[Session, Depends(get_session)]
QueueDep = Annotated[Queue, Depends(get_queue)]


def tenant_of(settings: Settings, session: Session, authorization: str | None) -> str:
    """The tenant an ``Authorization`` header value stands for; AuthenticationFailed if none."""
    if settings.auth is AuthMode.DISABLED:
        return settings.open_tenant
    scheme, _, secret = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise AuthenticationFailed("missing API key: send 'Authorization: Bearer tq_…' (create one: tuneq keys create)")
    return authenticate(session, secret.strip())


def lookup_tenant(settings: Settings, authorization: str | None) -> str:
    """``tenant_of`` on a session of its own, in autocommit: no transaction is held across the request."""
    with read_session_factory(settings.resolved_database_url)() as session:
        return tenant_of(settings, session, authorization)


async def get_authorization(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> str | None:
    """The ``Authorization`` header's value, through the bearer scheme so that OpenAPI documents it."""
    return f"{credentials.scheme} {credentials.credentials}" if credentials else None


AuthorizationDep = Annotated[str | None, Depends(get_authorization)]


def current_tenant(
    request: Request,
    settings: SettingsDep,
    session: SessionDep,
    header: AuthorizationDep,
) -> str:
    already: str | None = getattr(request.state, "tenant", None)  # set by IdempotencyKeys for this request
    if already is not None:
        return already
    # A read looks the key up on its own autocommit session: one connection per request. A write opens its
    # transaction (``session.begin()``) once its input is validated, and the lookup must not hold one open
    # across the route's file and Redis work, so it looks up on a session of its own.
    reads = request.method in READ_METHODS
    tenant = tenant_of(settings, session, header) if reads else lookup_tenant(settings, header)
    request.state.tenant = tenant
    return tenant


CurrentTenant = Annotated[str, Depends(current_tenant)]


@dataclass(frozen=True)
class Reader:
    """Runs a GET's database work on the event loop: the key lookup and the read, on one connection.

    JSON reads are ``async def`` routes that call this instead of sync routes
    in the threadpool, on purpose: each is one or two index lookups of well
    under a millisecond, and on this service's measure a threadpool hop cost
    more than the read (a bare read served 1,255/s through the threadpool and
    3,670/s on the loop). The read runs start to end without yielding, so the
    connection is back in its pool (core.db.loop_read_session_factory) before
    anything else runs on the loop, and a statement timeout bounds the wait.
    Work that may block longer (archives, file bodies) stays in sync routes.
    """

    settings: Settings
    sessions: sessionmaker[Session]
    authorization: str | None
    backlog: LoopBacklog
    scope: Scope  # the request's, which marks the loop probe it queued itself

    def __call__(self, work: Callable[[Session, str], T]) -> T:
        """``work(session, tenant)``, once the request's key is known good; its errors answer as any route's.

        Overloaded (503) instead if the loop is already too far behind: the check sits here, right before the
        loop is held, because requests that arrived together all pass the door before any of them reads.
        """
        if self.backlog.too_far_behind(self.scope, self.settings.api_max_queue_wait_seconds):
            raise Overloaded
        return read_with_one_retry(
            self.sessions, lambda session: work(session, tenant_of(self.settings, session, self.authorization))
        )


async def get_reader(request: Request, settings: SettingsDep, authorization: AuthorizationDep) -> Reader:
    sessions = loop_read_session_factory(settings.resolved_database_url)
    return Reader(settings, sessions, authorization, request.app.state.loop_backlog, request.scope)


ReaderDep = Annotated[Reader, Depends(get_reader)]


class _DroppedConnection(Exception):
    """The write's first statement found its pooled connection dropped by the database: nothing was sent."""


@dataclass(frozen=True)
class Writer:
    """Runs a write's database work in one threadpool call: the key lookup, then ``work``, in one transaction.

    Writes may wait on files (an estimate reads the model's config and the
    dataset's token counts), DNS (a webhook host) and Redis (the message goes
    out once committed), so they stay off the event loop; but one hop, not
    three: the key lookup, the route and the session's close each took one,
    and a hop cost as much CPU as a status read. The lookup shares the
    transaction's connection, and is its first statement: it also tells a
    connection the database dropped, so the pool needs no ping per write
    (core.db.write_session_factory).
    """

    settings: Settings
    authorization: str | None
    slots: WriteSlots
    scope: Scope  # the request's, which holds what is left of its wait

    async def __call__(self, work: Callable[[Session, str], T]) -> T:
        """``work(session, tenant)`` inside a transaction; committed (and its after-commit sends made) on return.

        Overloaded (503) instead if no write slot frees within the allowed wait.
        """
        async with self.slots.held(self.scope):
            return await run_in_threadpool(self._run, work)

    def _run(self, work: Callable[[Session, str], T]) -> T:
        try:
            return self._in_transaction(work)
        except _DroppedConnection:
            log.warning("a pooled database connection was dropped; writing on a new one")
            return self._in_transaction(work)

    def _in_transaction(self, work: Callable[[Session, str], T]) -> T:
        keyed = self.settings.auth is not AuthMode.DISABLED  # without keys, no lookup comes first: pinged pool
        url = self.settings.resolved_database_url
        sessions = write_session_factory(url) if keyed else session_factory(url)
        with sessions() as session, session.begin():
            try:
                tenant = tenant_of(self.settings, session, self.authorization)
            except DBAPIError as exc:
                if exc.connection_invalidated:
                    raise _DroppedConnection from exc
                raise
            return work(session, tenant)


async def get_writer(request: Request, settings: SettingsDep, authorization: AuthorizationDep) -> Writer:
    return Writer(settings, authorization, request.app.state.write_slots, request.scope)


WriterDep = Annotated[Writer, Depends(get_writer)]

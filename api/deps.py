"""Dependencies shared by the routes, as Annotated aliases so signatures read plainly."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from rq import Queue
from sqlalchemy.orm import Session

from core.api_keys import authenticate
from core.db import read_session_factory, session_factory
from core.errors import AuthenticationFailed
from core.settings import AuthMode, Settings

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


def current_tenant(
    request: Request,
    settings: SettingsDep,
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> str:
    already: str | None = getattr(request.state, "tenant", None)  # set by IdempotencyKeys for this request
    if already is not None:
        return already
    header = f"{credentials.scheme} {credentials.credentials}" if credentials else None
    # A read looks the key up on its own autocommit session: one connection per request. A write opens its
    # transaction (``session.begin()``) once its input is validated, and the lookup must not hold one open
    # across the route's file and Redis work, so it looks up on a session of its own.
    reads = request.method in READ_METHODS
    tenant = tenant_of(settings, session, header) if reads else lookup_tenant(settings, header)
    request.state.tenant = tenant
    return tenant


CurrentTenant = Annotated[str, Depends(current_tenant)]

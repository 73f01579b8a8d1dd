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
from core.db import session_factory, transaction
from core.errors import AuthenticationFailed
from core.settings import AuthMode, Settings

bearer = HTTPBearer(auto_error=False, description="an API key from `tuneq keys create`")


# Dependencies that do no I/O are ``async def``: FastAPI runs every sync dependency in its threadpool, and
# those hops were a fifth of a status read's CPU. Only work that can block (the database) goes to a thread.


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_session(request: Request) -> AsyncIterator[Session]:
    """A session for the route's own thread; it connects lazily, on its first statement there."""
    settings: Settings = request.app.state.settings
    session = session_factory(settings.resolved_database_url)()
    try:
        yield session
    finally:
        await run_in_threadpool(session.close)  # returning the connection may roll back: network I/O


async def get_queue(request: Request) -> Queue:
    queue: Queue = request.app.state.queue
    return queue


SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionDep = Annotated[Session, Depends(get_session)]
QueueDep = Annotated[Queue, Depends(get_queue)]


def tenant_of(settings: Settings, authorization: str | None) -> str:
    """The tenant an ``Authorization`` header value stands for; AuthenticationFailed if none."""
    if settings.auth is AuthMode.DISABLED:
        return settings.open_tenant
    scheme, _, secret = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise AuthenticationFailed("missing API key: send 'Authorization: Bearer tq_…' (create one: tuneq keys create)")
    # Its own short transaction: routes open theirs, and the lookup must not hold one open across the request.
    with transaction(settings.resolved_database_url) as session:
        return authenticate(session, secret.strip())


def current_tenant(
    request: Request,
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> str:
    already: str | None = getattr(request.state, "tenant", None)  # set by IdempotencyKeys for this request
    if already is not None:
        return already
    header = f"{credentials.scheme} {credentials.credentials}" if credentials else None
    tenant = tenant_of(settings, header)
    request.state.tenant = tenant
    return tenant


CurrentTenant = Annotated[str, Depends(current_tenant)]

"""Dependencies shared by the routes, as Annotated aliases so signatures read plainly."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from rq import Queue
from sqlalchemy.orm import Session

from core.db import session_factory
from core.settings import Settings


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_session(request: Request) -> Iterator[Session]:
    settings: Settings = request.app.state.settings
    with session_factory(settings.resolved_database_url)() as session:
        yield session


def get_queue(request: Request) -> Queue:
    queue: Queue = request.app.state.queue
    return queue


SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionDep = Annotated[Session, Depends(get_session)]
QueueDep = Annotated[Queue, Depends(get_queue)]

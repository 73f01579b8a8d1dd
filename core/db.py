"""Engine and session factory for PostgreSQL (production) and SQLite (embedded)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, TypeVar

import orjson
from sqlalchemy import DateTime, Engine, Insert, Table, create_engine, event, inspect
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.types import TypeDecorator

log = logging.getLogger(__name__)
T = TypeVar("T")


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, also on SQLite (which drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use an aware UTC datetime")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _tune_sqlite(dbapi_connection: Any, _record: Any) -> None:
    # API and workers are separate processes sharing one file: WAL lets readers
    # run beside a writer, and busy_timeout waits for a lock instead of failing.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def make_engine(url: str, **pool: Any) -> Engine:
    """An engine for ``url``; ``pool`` overrides the pool's options (by default the settings' shared pool)."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30}, **pool)
        event.listen(engine, "connect", _tune_sqlite)
        return engine
    from core.settings import get_settings  # here: settings import nothing of the database layer

    settings = get_settings()
    # A short pool_timeout: past capacity a request fails in seconds (the API answers 503), never waits 30 s.
    shared = {
        "pool_pre_ping": True,
        "pool_size": settings.database_pool_size,
        "max_overflow": settings.database_max_overflow,
        "pool_timeout": settings.database_pool_timeout_seconds,
    }
    # JSONB columns (estimates, hyperparameters, results) are most of a list page's decoding: orjson parses
    # them several times faster than json. PostgreSQL's JSONB holds no NaN, the one input orjson refuses.
    return create_engine(url, json_deserializer=orjson.loads, **(pool or shared))


AFTER_COMMIT = "tuneq_after_commit"


def after_commit(session: Session, callback: Callable[[], object]) -> None:
    """Run ``callback`` once the session's transaction commits; never if it rolls back.

    Queue messages go out this way: a worker must find the committed row when
    the message arrives, and a rolled-back change must send nothing.
    """
    session.info.setdefault(AFTER_COMMIT, []).append(callback)


def insert_now(session: Session, row: Any) -> None:
    """Insert a new entity's row at once, with one Core statement on the session's connection.

    For the hot path of a submit: the unit of work's flush of a job and its event cost a third more CPU than
    two statements. ``row`` stays out of the session (the caller holds it); column defaults apply as in a
    flush, and the order of statements is the caller's (a job before its events).
    """
    mapper = inspect(row).mapper
    values = {prop.columns[0].key: row.__dict__[prop.key] for prop in mapper.column_attrs if prop.key in row.__dict__}
    session.connection().execute(_insert_into(mapper.local_table), values)


@lru_cache(maxsize=16)
def _insert_into(table: Table) -> Insert:
    return table.insert()  # one statement object per table, so its cache key is computed once


@event.listens_for(Session, "after_commit")
def _run_after_commit(session: Session) -> None:
    for callback in session.info.pop(AFTER_COMMIT, []):
        try:
            callback()
        except Exception:  # the commit stands; recovery redoes what a failed callback missed
            log.exception("after-commit action failed")


@event.listens_for(Session, "after_rollback")
def _drop_after_commit(session: Session) -> None:
    session.info.pop(AFTER_COMMIT, None)


@lru_cache(maxsize=8)
def engine_for(url: str) -> Engine:
    return make_engine(url)


@lru_cache(maxsize=8)
def session_factory(url: str) -> sessionmaker[Session]:
    # Cached: each sessionmaker builds a Session subclass, and SQLAlchemy sets up event dispatch for every
    # new class, which cost an eighth of a status read's CPU when a factory was made per request.
    return sessionmaker(engine_for(url), expire_on_commit=False)


@lru_cache(maxsize=8)
def write_session_factory(url: str) -> sessionmaker[Session]:
    """Sessions for the API's writes (api.deps.Writer), on PostgreSQL a pool of their own without pre-ping.

    A ping is a round trip and a statement's CPU on every write. The caller's
    first statement finds a connection the database dropped instead, and the
    write starts again on a fresh one (SQLAlchemy invalidates the pool's older
    connections when it sees one dropped): nothing was sent before it, so that
    is safe. SQLite has no connections to drop: the shared pool.
    """
    if url.startswith("sqlite"):
        return session_factory(url)
    from core.settings import get_settings

    settings = get_settings()
    engine = make_engine(
        url,
        pool_size=settings.api_max_concurrent_writes,  # writes in flight in one API process (api.load_shedding)
        max_overflow=settings.database_max_overflow,  # several apps served in one process (tests) share it
        pool_timeout=settings.database_pool_timeout_seconds,
    )
    return sessionmaker(engine, expire_on_commit=False)


@lru_cache(maxsize=8)
def read_session_factory(url: str) -> sessionmaker[Session]:
    """Sessions for reads only: autocommit, so a few SELECTs cost no BEGIN and no ROLLBACK round trips.

    Same pool as ``session_factory``; each statement sees the latest committed data on its own.
    """
    return sessionmaker(engine_for(url).execution_options(isolation_level="AUTOCOMMIT"), expire_on_commit=False)


@lru_cache(maxsize=8)
def loop_read_session_factory(url: str) -> sessionmaker[Session]:
    """Sessions for the reads the API runs on its event loop (api.deps.Reader): autocommit, on a pool of their own.

    The loop runs one such read at a time, from checkout to release, so a
    connection or two serve every read of a process, and a checkout never
    waits behind connections the threadpool holds (a wait would stall the
    whole loop). No pre-ping: a ping is a round trip per read; a connection
    the database dropped fails instead, and ``read_with_one_retry`` runs the
    read again on a fresh one. A statement timeout bounds how long any read
    can hold the loop.

    On PostgreSQL every statement is prepared at once and runs its generic
    plan. These reads are key lookups and keyset pages whose LIMIT is a
    parameter, and a generic plan reads the index in the page's order and stops
    at the limit. Plans made for the values (psycopg's and PostgreSQL's first
    ten runs on each connection) trusted the statistics: for a tenant that grew
    since the last ANALYZE they sorted all of the tenant's jobs for every page
    (20,000 jobs: 67 ms a page instead of 0.4 ms).
    """
    return sessionmaker(_loop_read_engine(url).execution_options(isolation_level="AUTOCOMMIT"), expire_on_commit=False)


def _loop_read_engine(url: str) -> Engine:
    from core.settings import get_settings

    settings = get_settings()
    # Several apps served in one process (tests) share this pool, each on its own loop: hence the overflow.
    # On SQLite, WAL (make_engine) lets a read run beside a writer without waiting.
    engine = make_engine(url, pool_size=1, max_overflow=4, pool_timeout=settings.database_pool_timeout_seconds)
    if engine.dialect.name == "postgresql":
        timeout_ms = int(settings.api_read_timeout_seconds * 1000)

        @event.listens_for(engine, "connect")
        def _bound_statements(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.prepare_threshold = 0  # psycopg's default (5) plans the first runs for their values
            with dbapi_connection.cursor() as cursor:
                cursor.execute(f"SET statement_timeout = {timeout_ms}")
                cursor.execute("SET plan_cache_mode = force_generic_plan")
            dbapi_connection.commit()

    return engine


def read_with_one_retry(factory: sessionmaker[Session], work: Callable[[Session], T]) -> T:
    """Run a read on a session of ``factory``; once more if the connection turned out to be dead.

    SQLAlchemy invalidates the pool's older connections when it sees one was
    dropped (a database restart, an idle timeout), so the second try connects
    afresh. A read changes nothing, so running it twice is safe.
    """
    try:
        with factory() as session:
            return work(session)
    except DBAPIError as exc:
        if not exc.connection_invalidated:
            raise
        log.warning("a pooled database connection was dropped; reading again on a new one")
        with factory() as session:
            return work(session)


@contextmanager
def transaction(url: str) -> Iterator[Session]:
    """A session whose work is committed on success and rolled back on error."""
    with session_factory(url).begin() as session:
        yield session


def run_with_retry(
    url: str,
    work: Callable[[Session], T],
    deadline_seconds: float,
    first_delay: float = 0.2,
    max_delay: float = 5.0,
) -> T:
    """Run ``work`` in a transaction, retrying with backoff while the database is unreachable.

    Only connection-level failures are retried; a constraint violation or a
    domain error is raised at once.
    """
    deadline = time.monotonic() + deadline_seconds
    delay = first_delay
    while True:
        try:
            with transaction(url) as session:
                return work(session)
        except (OperationalError, InterfaceError) as exc:
            if time.monotonic() + delay > deadline:
                raise
            log.warning("database unavailable (%s); retrying in %.1fs", type(exc).__name__, delay)
            time.sleep(delay)
            delay = min(delay * 2, max_delay)

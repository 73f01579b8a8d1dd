"""Several API replicas may auto-migrate at once: an advisory lock makes them take turns."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from core.migrate import MIGRATION_LOCK_KEY, upgrade_database
from tests.conftest import PG_BASE_URL

PLAIN_URL = PG_BASE_URL.replace("postgresql+psycopg://", "postgresql://")


@pytest.fixture
def fresh_schema_url(database_url: str) -> Iterator[tuple[str, str]]:
    schema = f"tuneq_lock_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PLAIN_URL, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    yield f"{PG_BASE_URL}{'&' if '?' in PG_BASE_URL else '?'}options=-csearch_path%3D{schema}", schema
    with psycopg.connect(PLAIN_URL, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")


def _waiting_for_migration_lock(conn: psycopg.Connection) -> int:
    row = conn.execute(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND classid = %s AND objid = %s",
        (MIGRATION_LOCK_KEY >> 32, MIGRATION_LOCK_KEY & 0xFFFFFFFF),
    ).fetchone()
    return int(row[0]) if row else 0


def test_concurrent_migrations_wait_for_the_lock_and_then_all_succeed(fresh_schema_url: tuple[str, str]) -> None:
    url, schema = fresh_schema_url
    errors: list[BaseException] = []

    def migrate() -> None:
        try:
            upgrade_database(url)
        except BaseException as exc:
            errors.append(exc)

    with psycopg.connect(PLAIN_URL, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_KEY,))
        replicas = [threading.Thread(target=migrate) for _ in range(2)]
        for replica in replicas:
            replica.start()
        deadline = time.monotonic() + 30
        while _waiting_for_migration_lock(holder) < 2:  # both replicas are blocked on the lock, not migrating
            assert time.monotonic() < deadline, "the migrations never asked for the lock"
            assert not errors, errors
            time.sleep(0.05)
        tables = holder.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = %s", (schema,)
        ).fetchone()
        assert tables == (0,)
        holder.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_KEY,))
    for replica in replicas:
        replica.join(timeout=120)
    assert not errors, errors
    with psycopg.connect(PLAIN_URL, autocommit=True) as conn:
        versions = conn.execute(f"SELECT version_num FROM {schema}.alembic_version").fetchall()
    assert len(versions) == 1

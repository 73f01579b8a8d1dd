"""The schema exists only through Alembic, and the migrations match the models."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from core.db import make_engine
from core.migrate import upgrade_database
from core.models import Base


def _diff(url: str) -> list[object]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return list(compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata))
    finally:
        engine.dispose()


def test_migrations_match_models_on_postgresql(database_url: str) -> None:
    assert _diff(database_url) == []


def test_migrations_match_models_on_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'tuneq.db'}"
    upgrade_database(url)
    upgrade_database(url)  # idempotent: a second run is a no-op
    assert _diff(url) == []
    tables = set(inspect(make_engine(url)).get_table_names())
    assert {"jobs", "job_events", "job_metrics", "files", "alembic_version"} <= tables

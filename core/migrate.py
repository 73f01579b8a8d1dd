"""Bring a database to the newest schema with Alembic (the only way the schema changes).

The migrations ship inside the package (``migrations`` is package data), so an
installed wheel migrates from any working directory. On PostgreSQL the upgrade
holds an advisory lock: several API replicas starting at once with
``TUNEQ_AUTO_MIGRATE`` run it one after the other, and all but the first find
nothing to do.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, text

from core.db import make_engine

# Any fixed 64-bit number; tuneq's only advisory lock. ("tuneq" in ASCII.)
MIGRATION_LOCK_KEY = 0x74756E6571


def migrations_dir() -> Path:
    """Where the installed ``migrations`` package lies on disk (Alembic reads the revisions as files)."""
    location = resources.files("migrations")
    if not isinstance(location, Path):
        raise RuntimeError(f"tuneq's migrations must be installed as files on disk, not inside {location}")
    return location


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade_database(database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        # SQLite is the single-host embedded mode: one process migrates, and SQLite locks the file anyway.
        command.upgrade(alembic_config(database_url), "head")
        return
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            _upgrade_holding_lock(connection, database_url)
    finally:
        engine.dispose()


def _upgrade_holding_lock(connection: Connection, database_url: str) -> None:
    # A session-level lock: it outlives the migration transactions and goes away with the connection,
    # so a migrator that dies mid-way never leaves the others waiting.
    connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
    connection.commit()
    try:
        config = alembic_config(database_url)
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
        connection.commit()
    finally:
        connection.rollback()  # a failed migration leaves the transaction aborted; unlocking needs a clean one
        connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK_KEY})
        connection.commit()

"""The database's clock: the one time every host's heartbeats are written and judged by.

A heartbeat written with a worker host's own clock and judged against the
reaper host's clock makes a live job look lost as soon as the two disagree by
more than the staleness window. Writing ``db_now()`` and comparing with
``db_now_minus(seconds)`` uses one clock for both sides.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Float, literal
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import FunctionElement

from core.db import UTCDateTime

# SQLite's CURRENT_TIMESTAMP has whole seconds only; this matches the stored format to the millisecond.
_SQLITE_NOW = "strftime('%Y-%m-%d %H:%M:%f', 'now')"


class db_now(FunctionElement[Any]):  # lowercase: reads like func.now() in queries
    """The database server's current time (UTC); on PostgreSQL the transaction's start."""

    type = UTCDateTime()
    inherit_cache = True


class db_now_minus(FunctionElement[Any]):
    """The database server's time ``seconds`` ago."""

    type = UTCDateTime()
    inherit_cache = True

    def __init__(self, seconds: float) -> None:
        # A bound parameter, so statements differing only in ``seconds`` share one cached compilation.
        super().__init__(literal(float(seconds), Float()))


@compiles(db_now)
def _now_default(element: db_now, compiler: SQLCompiler, **kw: Any) -> str:
    return "CURRENT_TIMESTAMP"


@compiles(db_now, "postgresql")
def _now_postgresql(element: db_now, compiler: SQLCompiler, **kw: Any) -> str:
    return "now()"


@compiles(db_now, "sqlite")
def _now_sqlite(element: db_now, compiler: SQLCompiler, **kw: Any) -> str:
    return _SQLITE_NOW


@compiles(db_now_minus, "postgresql")
def _minus_postgresql(element: db_now_minus, compiler: SQLCompiler, **kw: Any) -> str:
    return f"(now() - make_interval(secs => {compiler.process(element.clauses, **kw)}))"


@compiles(db_now_minus, "sqlite")
def _minus_sqlite(element: db_now_minus, compiler: SQLCompiler, **kw: Any) -> str:
    seconds = compiler.process(element.clauses, **kw)
    return f"strftime('%Y-%m-%d %H:%M:%f', 'now', '-' || {seconds} || ' seconds')"

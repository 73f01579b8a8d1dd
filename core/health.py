"""Readiness checks: can this process reach the database and Redis right now?

Each check has its own short timeout, so a probe answers even when a
dependency hangs instead of refusing (a blackholed host), and the probe never
borrows a connection from the pool that serves requests.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache

from redis import Redis
from redis.exceptions import RedisError
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import SQLAlchemyError

from core.db import make_engine


class Readiness(StrEnum):
    OK = "ok"
    DEGRADED = "degraded"  # Redis down: jobs are still accepted; the reconciler enqueues them later
    UNAVAILABLE = "unavailable"  # database down: nothing can be accepted or answered


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    reason: str | None = None

    def as_dict(self) -> dict[str, str]:
        if self.ok:
            return {"status": "ok"}
        return {"status": "down", "reason": self.reason or "unknown"}


@lru_cache(maxsize=8)
def _probe_engine(database_url: str, timeout_seconds: float) -> Engine:
    if not database_url.startswith("postgresql"):
        return make_engine(database_url)
    return create_engine(
        database_url,
        pool_size=1,
        max_overflow=0,
        pool_pre_ping=True,
        pool_timeout=timeout_seconds,
        connect_args={"connect_timeout": max(1, round(timeout_seconds))},
    )


def check_database(database_url: str, timeout_seconds: float) -> CheckResult:
    try:
        with _probe_engine(database_url, timeout_seconds).connect() as conn:
            conn.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        cause = getattr(exc, "orig", None) or exc  # the driver's error says what went wrong, without SQL noise
        return CheckResult(False, f"database unreachable: {type(cause).__name__}: {cause}".strip())
    return CheckResult(True)


def check_redis(redis_url: str | None, timeout_seconds: float) -> CheckResult:
    if not redis_url:
        return CheckResult(False, "no Redis URL configured")
    client = Redis.from_url(redis_url, socket_connect_timeout=timeout_seconds, socket_timeout=timeout_seconds)
    try:
        client.ping()
    except RedisError as exc:
        return CheckResult(False, f"redis unreachable: {type(exc).__name__}: {exc}")
    finally:
        client.close()
    return CheckResult(True)


def overall(database: CheckResult, redis: CheckResult) -> Readiness:
    if not database.ok:
        return Readiness.UNAVAILABLE
    return Readiness.OK if redis.ok else Readiness.DEGRADED

"""Liveness and readiness probes; unauthenticated, for load balancers and orchestrators.

- ``/livez`` (alias ``/healthz``): the process serves HTTP. Restart it if this fails.
- ``/readyz``: the database and Redis are reachable. ``ok`` and ``degraded``
  (Redis down: jobs are still accepted, the database is the truth and the
  reconciler enqueues them later) answer 200; ``unavailable`` (database down)
  answers 503, so the replica leaves the load balancer without being restarted.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from api.deps import SettingsDep
from core.health import Readiness, check_database, check_redis, overall

router = APIRouter(tags=["health"])


@router.get("/livez")
@router.get("/healthz")
def livez() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
def readyz(settings: SettingsDep, response: Response) -> dict[str, Any]:
    timeout = settings.readiness_timeout_seconds
    database = check_database(settings.resolved_database_url, timeout)
    redis = check_redis(settings.redis_url, timeout)
    status = overall(database, redis)
    if status is Readiness.UNAVAILABLE:
        response.status_code = 503
    return {"status": status.value, "checks": {"database": database.as_dict(), "redis": redis.as_dict()}}

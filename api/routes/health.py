"""Liveness/readiness: the API is ready when it can reach the database and Redis."""

from __future__ import annotations

from fastapi import APIRouter, Request
from sqlalchemy import text

from api.deps import SessionDep

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz(request: Request, session: SessionDep) -> dict[str, str]:
    session.execute(text("SELECT 1"))
    request.app.state.redis.ping()
    return {"status": "ok"}

"""The OpenAI-compatible API under /v1: thin routes over the same core services as the native ones."""

from __future__ import annotations

from fastapi import APIRouter

from api.routes.v1 import files, jobs, models

router = APIRouter(prefix="/v1")
router.include_router(files.router)
router.include_router(jobs.router)
router.include_router(models.router)

"""The web dashboard: static files, served without a key; the page asks for one and calls the API with it."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, RedirectResponse

from core.errors import NotFound

STATIC = Path(__file__).resolve().parent.parent / "static" / "dashboard"
MEDIA_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css"}

router = APIRouter(prefix="/dashboard", include_in_schema=False)


@router.get("")
def dashboard_root() -> RedirectResponse:
    return RedirectResponse("/dashboard/")


@router.get("/")
def dashboard_page() -> FileResponse:
    return FileResponse(STATIC / "index.html", media_type="text/html", headers={"Cache-Control": "no-cache"})


@router.get("/{name}")
def dashboard_asset(name: str) -> FileResponse:
    path = STATIC / name
    if path.suffix not in MEDIA_TYPES or path.parent != STATIC or not path.is_file():
        raise NotFound(f"no dashboard file {name!r}")
    return FileResponse(path, media_type=MEDIA_TYPES[path.suffix], headers={"Cache-Control": "no-cache"})

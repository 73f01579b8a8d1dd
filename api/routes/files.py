"""Dataset uploads."""

from __future__ import annotations

from fastapi import APIRouter, UploadFile

from api.deps import SessionDep, SettingsDep
from core import files
from core.views import FileView, file_view

router = APIRouter(prefix="/files", tags=["files"])


@router.post("", status_code=201, response_model=FileView)
def upload_file(file: UploadFile, session: SessionDep, settings: SettingsDep) -> FileView:
    """Upload a JSONL dataset; it is validated before it is kept."""
    with session.begin():
        record = files.store_upload(session, settings, file.filename or "upload.jsonl", file.file)
    return file_view(record)


@router.get("/{file_id}", response_model=FileView)
def get_file(file_id: str, session: SessionDep) -> FileView:
    return file_view(files.get_file(session, file_id))

"""Dataset uploads: upload, list, read, download."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, UploadFile
from fastapi.responses import FileResponse
from sqlalchemy.orm import Session

from api.deps import CurrentTenant, ReaderDep, SessionDep, SettingsDep
from api.errors import ERROR_RESPONSES
from api.schemas import Cursor, FileId, FileList
from core import files
from core.views import FileView, file_view

router = APIRouter(prefix="/files", tags=["files"], responses=ERROR_RESPONSES)


@router.post("", status_code=201, response_model=FileView)
def upload_file(file: UploadFile, tenant: CurrentTenant, session: SessionDep, settings: SettingsDep) -> FileView:
    """Upload a JSONL dataset; it is validated before it is kept."""
    with session.begin():
        record = files.store_upload(
            session, settings, tenant=tenant, filename=file.filename or "upload.jsonl", stream=file.file
        )
    return file_view(record)


@router.get("", response_model=FileList)
async def list_files(
    read: ReaderDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    after: Annotated[Cursor | None, Query(description="id of the last file of the previous page")] = None,
) -> FileList:
    def page(session: Session, tenant: str) -> FileList:
        found = files.list_files(session, tenant=tenant, limit=limit, after=after)
        data = [file_view(record) for record in found.items]
        return FileList(data=data, has_more=found.has_more, next_cursor=data[-1].id if found.has_more else None)

    return read(page)


@router.get("/{file_id}", response_model=FileView)
async def get_file(file_id: FileId, read: ReaderDep) -> FileView:
    return read(lambda session, tenant: file_view(files.get_file(session, tenant=tenant, file_id=file_id)))


@router.get("/{file_id}/content", response_class=FileResponse)
def get_file_content(
    file_id: FileId, tenant: CurrentTenant, session: SessionDep, settings: SettingsDep
) -> FileResponse:
    """The uploaded bytes, as stored."""
    record = files.get_file(session, tenant=tenant, file_id=file_id)
    return FileResponse(files.file_path(settings, record), media_type="application/jsonl", filename=record.filename)

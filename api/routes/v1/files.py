"""OpenAI-compatible Files API: upload, list, read, download, delete (the same service as /files)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Query, UploadFile
from fastapi.responses import FileResponse
from sqlalchemy.orm import Session

from api.deps import CurrentTenant, ReaderDep, SessionDep, SettingsDep
from api.errors import ERROR_RESPONSES
from api.routes.v1.objects import FileDeleted, FileList, FileObject, file_object
from api.schemas import Cursor, FileId
from core import files
from core.errors import InvalidRequest

router = APIRouter(prefix="/files", tags=["v1 files"], responses=ERROR_RESPONSES)

MEDIA_TYPES = {"csv": "text/csv"}


@router.post("", response_model=FileObject)
def create_file(
    file: UploadFile,
    purpose: Annotated[str, Form()],
    tenant: CurrentTenant,
    session: SessionDep,
    settings: SettingsDep,
) -> FileObject:
    """Upload a JSONL training or validation file (purpose ``fine-tune``); it is validated before it is kept."""
    if purpose != "fine-tune":
        raise InvalidRequest(f"purpose {purpose!r} is not supported; tuneq keeps 'fine-tune' files", param="purpose")
    with session.begin():
        record = files.store_upload(
            session, settings, tenant=tenant, filename=file.filename or "upload.jsonl", stream=file.file
        )
    return file_object(record)


@router.get("", response_model=FileList)
async def list_files(
    read: ReaderDep,
    limit: Annotated[int, Query(ge=1, le=10000)] = 20,
    after: Annotated[Cursor | None, Query(description="id of the last file of the previous page")] = None,
    purpose: str | None = None,
) -> FileList:
    def page(session: Session, tenant: str) -> FileList:
        found = files.list_files(session, tenant=tenant, limit=limit, after=after)
        data = [file_object(r) for r in found.items if purpose is None or r.purpose == purpose]
        return FileList(
            data=data,
            has_more=found.has_more,
            first_id=found.items[0].id if found.items else None,
            last_id=found.items[-1].id if found.items else None,
        )

    return read(page)


@router.get("/{file_id}", response_model=FileObject)
async def retrieve_file(file_id: FileId, read: ReaderDep) -> FileObject:
    return read(lambda session, tenant: file_object(files.get_file(session, tenant=tenant, file_id=file_id)))


@router.get("/{file_id}/content", response_class=FileResponse)
def file_content(file_id: FileId, tenant: CurrentTenant, session: SessionDep, settings: SettingsDep) -> FileResponse:
    record = files.get_file(session, tenant=tenant, file_id=file_id)
    media_type = MEDIA_TYPES.get(record.format, "application/jsonl")
    return FileResponse(files.file_path(settings, record), media_type=media_type, filename=record.filename)


@router.delete("/{file_id}", response_model=FileDeleted)
def delete_file(file_id: FileId, tenant: CurrentTenant, session: SessionDep, settings: SettingsDep) -> FileDeleted:
    """Delete a file; refused (409) while a queued, running or paused job still needs it."""
    with session.begin():
        files.delete_file(session, settings, tenant=tenant, file_id=file_id)
    return FileDeleted(id=file_id)

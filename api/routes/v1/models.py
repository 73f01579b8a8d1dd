"""Fine-tuned models by name (``ft:<base>:<suffix>:<job id>``): download the adapter."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import FileResponse

from api.deps import CurrentTenant, SessionDep, SettingsDep
from api.downloads import archive_response
from api.errors import ERROR_RESPONSES
from core import artifacts
from core.errors import JobNotFound
from core.jobs import get_job
from core.openai_compat import fine_tuned_model, job_id_of_model

router = APIRouter(prefix="/models", tags=["v1 models"], responses=ERROR_RESPONSES)


@router.get("/{model}/content", response_class=FileResponse)
def download_model(model: str, tenant: CurrentTenant, session: SessionDep, settings: SettingsDep) -> FileResponse:
    """The adapter (with tokenizer and model card) as a .tar; loads with ``PeftModel.from_pretrained``."""
    job_id = job_id_of_model(model)
    if fine_tuned_model(get_job(session, tenant=tenant, job_id=job_id)) != model:
        raise JobNotFound(f"no fine-tuned model {model!r}", param="model")
    return archive_response(artifacts.adapter_archive(session, settings, tenant=tenant, job_id=job_id))

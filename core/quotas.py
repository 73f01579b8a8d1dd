"""Per-tenant quotas (see ``TenantLimits``): refused with QuotaExceeded, which the API answers with 429.

The running-jobs limit is different: it never refuses a request, the
scheduler just leaves that tenant's further jobs queued (core.scheduling).
"""

from __future__ import annotations

from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session

from core.errors import PayloadTooLarge, QuotaExceeded
from core.models import File, Job
from core.settings import Settings
from core.states import JobStatus

RETRY_QUEUED_SECONDS = 60  # a queued job usually starts or ends within minutes
RETRY_STORAGE_SECONDS = 3600  # storage frees only when the tenant deletes files


# Every submit runs this count: built once and run on the session's connection (core.api_keys says why), and
# it counts no further than the limit, so a tenant's long queue costs no more than a short one.
_QUEUED_UP_TO_LIMIT = select(func.count()).select_from(
    select(Job.id)
    .where(Job.tenant == bindparam("tenant"), Job.status == JobStatus.QUEUED.value)
    .limit(bindparam("limit"))
    .subquery()
)


def check_can_queue(session: Session, settings: Settings, tenant: str) -> None:
    limit = settings.limits_for(tenant).max_queued_jobs
    if limit is None:
        return
    queued = session.connection().execute(_QUEUED_UP_TO_LIMIT, {"tenant": tenant, "limit": limit}).scalar_one()
    if queued >= limit:
        raise QuotaExceeded(
            f"quota max_queued_jobs reached: {limit} or more jobs queued, the limit is {limit}; "
            "wait for some to start or cancel some",
            retry_after=RETRY_QUEUED_SECONDS,
        )


def stored_bytes(session: Session, tenant: str) -> int:
    return int(session.scalar(select(func.coalesce(func.sum(File.bytes), 0)).where(File.tenant == tenant)) or 0)


def upload_allowance(session: Session, settings: Settings, tenant: str) -> tuple[int | None, int | None]:
    """(largest file accepted, bytes of storage left); None = unlimited. Raises if no storage is left."""
    limits = settings.limits_for(tenant)
    if limits.max_stored_bytes is None:
        return limits.max_upload_bytes, None
    left = limits.max_stored_bytes - stored_bytes(session, tenant)
    if left <= 0:
        raise storage_exceeded(limits.max_stored_bytes)
    return limits.max_upload_bytes, left


def storage_exceeded(limit: int) -> QuotaExceeded:
    return QuotaExceeded(
        f"quota max_stored_bytes reached: this tenant's files may hold {limit} bytes in all; delete some files",
        retry_after=RETRY_STORAGE_SECONDS,
        param="file",
    )


def file_too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"file is larger than the limit of {limit} bytes (max_upload_bytes)", param="file")


def tenants_at_running_limit(session: Session, settings: Settings) -> list[str]:
    """Tenants whose running jobs already fill their max_running_jobs."""
    running = session.execute(
        select(Job.tenant, func.count()).where(Job.status == JobStatus.RUNNING.value).group_by(Job.tenant)
    ).all()
    full = []
    for tenant, count in running:
        limit = settings.limits_for(tenant).max_running_jobs
        if limit is not None and count >= limit:
            full.append(tenant)
    return full

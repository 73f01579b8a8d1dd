"""Which queued job a free worker takes next: fair across tenants, then by priority.

The queue message only wakes a worker; the database decides what it runs.
Policy, in order:
1. tenants with fewer running jobs first (no tenant holds every GPU while another waits);
2. among those, the tenant served least recently first (round robin, so a
   burst from one tenant is interleaved with everyone else's jobs);
3. higher ``priority`` first, then oldest first.
Tenants already running their ``max_running_jobs`` are passed over.
A tenant's priority therefore orders its own jobs and breaks ties between
tenants; it never lets one tenant starve another.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql import Subquery

from core import jobs
from core.models import Job
from core.quotas import tenants_at_running_limit
from core.settings import Settings
from core.states import JobStatus

CANDIDATES = 8  # claims race; a loser tries the next candidate instead of re-querying


def _tenant_usage() -> Subquery:
    """Per tenant with queued jobs: its running jobs and when it last started one.

    Only tenants that have queued jobs are looked at, and each figure is an
    index lookup (the partial index on active rows, and ``ix_jobs_tenant_started``),
    so finished jobs, however many, cost nothing.
    """
    waiting = select(Job.tenant).where(Job.status == JobStatus.QUEUED.value).distinct().subquery("waiting")
    others = aliased(Job)
    running = (
        select(func.count())
        .where(others.tenant == waiting.c.tenant, others.status == JobStatus.RUNNING.value)
        .correlate(waiting)
        .scalar_subquery()
    )
    last_started = (
        select(func.max(others.started_at))
        .where(others.tenant == waiting.c.tenant)
        .correlate(waiting)
        .scalar_subquery()
    )
    return select(waiting.c.tenant, running.label("running"), last_started.label("last_started")).subquery("usage")


def next_candidates(session: Session, settings: Settings, limit: int = CANDIDATES) -> list[str]:
    usage = _tenant_usage()
    query = (
        select(Job.id)
        .join(usage, usage.c.tenant == Job.tenant)
        .where(Job.status == JobStatus.QUEUED.value)
        .where(Job.tenant.not_in(tenants_at_running_limit(session, settings)))
        .order_by(
            usage.c.running.asc(),
            usage.c.last_started.asc().nulls_first(),
            Job.priority.desc(),
            Job.created_at.asc(),
            Job.id.asc(),
        )
        .limit(limit)
    )
    return list(session.scalars(query))


def claim_next_job(session: Session, settings: Settings, worker_id: str, **values: Any) -> Job | None:
    """Claim the best queued job for ``worker_id`` (see ``jobs.claim_job``); None when nothing may run."""
    for job_id in next_candidates(session, settings):
        claimed = jobs.claim_job(session, job_id, worker_id, **values)
        if claimed is not None:
            return claimed
    return None

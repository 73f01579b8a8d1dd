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

from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import groupby
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, aliased

from core import jobs
from core.models import Job
from core.quotas import tenants_at_running_limit
from core.settings import Settings
from core.states import JobStatus

CANDIDATES = 8  # claims race; a loser tries the next candidate instead of re-querying


@dataclass(frozen=True)
class TenantUsage:
    tenant: str
    running: int
    last_started: datetime | None

    @property
    def rank(self) -> tuple[int, bool, datetime]:
        """Fewer running first, then least recently served (never served before anyone)."""
        return self.running, self.last_started is not None, self.last_started or datetime.min.replace(tzinfo=UTC)


def waiting_tenants(session: Session) -> list[TenantUsage]:
    """Each tenant with queued jobs, with its running jobs and when it last started one.

    One row per waiting tenant, each figure an index lookup (the partial index
    on active rows; ``ix_jobs_tenant_started``), so finished jobs, however
    many, cost nothing, and queued jobs are read only as index entries.
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
    rows = session.execute(select(waiting.c.tenant, running, last_started)).all()
    return [TenantUsage(tenant, count, started) for tenant, count, started in rows]


def next_candidates(session: Session, settings: Settings, limit: int = CANDIDATES) -> list[str]:
    """The best queued jobs by the policy above, best first.

    Tenants are ranked first (a few rows), then jobs are read only for the
    best-ranked tenants: one query per group of tenants tied on rank, with
    priority and age breaking the tie across them, as one global ORDER BY would.
    """
    full = set(tenants_at_running_limit(session, settings))
    ranked = sorted((u for u in waiting_tenants(session) if u.tenant not in full), key=lambda u: u.rank)
    candidates: list[str] = []
    for _, group in groupby(ranked, key=lambda u: u.rank):
        tenants = [usage.tenant for usage in group]
        query = (
            select(Job.id)
            .where(Job.status == JobStatus.QUEUED.value, Job.tenant.in_(tenants))
            .order_by(Job.priority.desc(), Job.created_at.asc(), Job.id.asc())
            .limit(limit - len(candidates))
        )
        candidates += session.scalars(query)
        if len(candidates) >= limit:
            break
    return candidates


def claim_next_job(session: Session, settings: Settings, worker_id: str, **values: Any) -> Job | None:
    """Claim the best queued job for ``worker_id`` (see ``jobs.claim_job``); None when nothing may run."""
    for job_id in next_candidates(session, settings):
        claimed = jobs.claim_job(session, job_id, worker_id, **values)
        if claimed is not None:
            return claimed
    return None

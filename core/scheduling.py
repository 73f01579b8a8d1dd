"""Which queued job a free worker takes next: fair across tenants, then by priority.

The queue message only wakes a worker; the database decides what it runs.
Policy, in order:
1. tenants with fewer running jobs first (no tenant holds every GPU while another waits);
2. among those, the tenant served least recently first (round robin, so a
   burst from one tenant is interleaved with everyone else's jobs);
3. higher ``priority`` first, then oldest first.
Tenants already running their ``max_running_jobs`` are passed over, and so
are jobs needing more GPUs than the claiming worker's host has free now
(core.gpu_reservations); they stay queued, and are woken when GPUs free up.
A tenant's priority therefore orders its own jobs and breaks ties between
tenants; it never lets one tenant starve another.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import groupby
from typing import Any

from redis.exceptions import RedisError
from rq import Queue
from sqlalchemy import ColumnElement, ScalarSelect, Select, func, select
from sqlalchemy.orm import Session, aliased

from core import jobs
from core.db import after_commit
from core.gpu_reservations import WorkerGpus, free_gpus, lock_host, reserve
from core.models import Job
from core.quotas import tenants_at_running_limit
from core.settings import Settings
from core.states import JobStatus
from core.wakeups import wake_jobs_without_message

log = logging.getLogger(__name__)

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


def _waiting_tenants_query() -> Select[Any]:
    """Each tenant with queued jobs, with its running jobs and when it last started one.

    One row per waiting tenant, each figure an index lookup (the partial index
    on active rows; ``ix_jobs_tenant_started``), so finished jobs, however
    many, cost nothing. The tenants themselves come from a skip scan of the
    active index, one lookup per tenant: a DISTINCT read every queued job.
    """
    others = aliased(Job)

    def first_tenant_after(previous: ColumnElement[str] | None) -> ScalarSelect[str]:
        after = [] if previous is None else [others.tenant > previous]
        return select(func.min(others.tenant)).where(others.status == JobStatus.QUEUED.value, *after).scalar_subquery()

    waiting = select(first_tenant_after(None).label("tenant")).cte("waiting", recursive=True)
    waiting = waiting.union_all(
        select(first_tenant_after(waiting.c.tenant).label("tenant")).where(waiting.c.tenant.is_not(None))
    )
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
    return select(waiting.c.tenant, running, last_started).where(waiting.c.tenant.is_not(None))


_WAITING_TENANTS = _waiting_tenants_query()  # built once: a claim otherwise spent ~1 ms of Python making it


def waiting_tenants(session: Session) -> list[TenantUsage]:
    """Each tenant with queued jobs, with its running jobs and when it last started one (_waiting_tenants_query)."""
    return [TenantUsage(*row) for row in session.execute(_WAITING_TENANTS)]


def next_candidates(
    session: Session, settings: Settings, limit: int = CANDIDATES, max_gpus: int | None = None
) -> list[str]:
    """The best queued jobs by the policy above, best first; only those needing at most ``max_gpus`` if given.

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
        if max_gpus is not None:
            query = query.where(Job.gpus <= max_gpus)
        candidates += session.scalars(query)
        if len(candidates) >= limit:
            break
    return candidates


def claim_next_job(
    session: Session, settings: Settings, worker_id: str, gpus: WorkerGpus | None = None, **values: Any
) -> Job | None:
    """Claim the best queued job that fits for ``worker_id`` (see ``jobs.claim_job``); None when nothing may run.

    A GPU worker (``gpus``) takes only a job that fits the host's free GPUs and, in this transaction,
    reserves its own GPU plus the lowest free others for it. A worker without a GPU (``None``) trains
    one-GPU jobs on its CPU and reserves nothing.
    """
    if gpus is None:
        return _claim_first(session, worker_id, next_candidates(session, settings, max_gpus=1), values)
    lock_host(session, gpus.host)
    free = free_gpus(session, gpus)
    if not free:
        return None  # its own GPU is lent to another worker's job
    candidates = next_candidates(session, settings, max_gpus=len(free))
    claimed = _claim_first(session, worker_id, candidates, values)
    if claimed is not None:
        reserve(session, gpus.host, free[: claimed.gpus], claimed.id, worker_id)
    return claimed


def _claim_first(session: Session, worker_id: str, candidates: list[str], values: dict[str, Any]) -> Job | None:
    for job_id in candidates:
        claimed = jobs.claim_job(session, job_id, worker_id, **values)
        if claimed is not None:
            return claimed
    return None


def wake_waiting_jobs(session: Session, settings: Settings, queue: Queue, count: int) -> None:
    """Once committed, give the best ``count`` queued jobs a message if they have none.

    Called when GPUs are freed: a job too big for the GPUs free when its
    message came was passed over, and its message served another job or was
    dropped; without this it would wait for the reconciler.
    """
    waiting = next_candidates(session, settings, limit=count)
    if not waiting:
        return

    def send() -> None:
        try:
            wake_jobs_without_message(settings, queue, waiting)
        except RedisError:
            log.warning("could not wake %s; the reconciler will", waiting)

    after_commit(session, send)

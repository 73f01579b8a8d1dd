"""Which GPUs of a host running jobs hold: one ``gpu_reservations`` row per GPU in use.

A job asking for ``gpus: N`` runs on N GPUs of one host: its claiming
worker's own GPU and N-1 it borrows from idle workers of the same host. Every
claim by a GPU worker reserves its own GPU too, in the claim's transaction, so:

- the primary key (host, gpu_index) makes double use impossible: a second
  reservation of a GPU fails the constraint and rolls the whole claim back;
- a worker whose own GPU is lent out sees it reserved and claims nothing;
- on PostgreSQL, claims of one host are serialised by a transaction-level
  advisory lock on the host, so workers never race to the same free GPUs
  (claims take milliseconds; hosts have a handful of workers). The key is
  the second line, and the only one on SQLite, which serves one host.

The worker parent releases its job's rows when the job process ends; the
maintenance round deletes rows whose job no longer runs under the worker that
reserved them (a host lost, then reaped), so none blocks a GPU forever.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import and_, delete, exists, func, insert, select
from sqlalchemy.orm import Session

from core.db import utcnow
from core.models import GpuReservation, Job
from core.states import JobStatus

# Names "a GPU claim on host <hashtext(host)>" in PostgreSQL's two-key advisory lock space; the
# maintenance lock (core.recovery) uses another class there, and migrations the one-key space.
HOST_CLAIM_LOCK_CLASS = 0x7475


@dataclass(frozen=True)
class WorkerGpus:
    """A GPU worker's place on its host: its own GPU and every GPU the host's workers serve."""

    host: str
    own: int
    host_gpus: tuple[int, ...]

    def __post_init__(self) -> None:
        if self.own not in self.host_gpus:
            raise ValueError(f"GPU {self.own} is not among the host's GPUs {list(self.host_gpus)}")


def lock_host(session: Session, host: str) -> None:
    """Serialise GPU claims on ``host`` until this transaction ends (PostgreSQL; a no-op on SQLite)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.pg_advisory_xact_lock(HOST_CLAIM_LOCK_CLASS, func.hashtext(host))))


def reserved_on(session: Session, host: str) -> set[int]:
    return set(session.scalars(select(GpuReservation.gpu_index).where(GpuReservation.host == host)))


def free_gpus(session: Session, gpus: WorkerGpus) -> list[int]:
    """The host's free GPUs, the worker's own first; none at all while its own GPU is lent out."""
    taken = reserved_on(session, gpus.host)
    if gpus.own in taken:
        return []
    return [gpus.own, *sorted(set(gpus.host_gpus) - taken - {gpus.own})]


def reserve(session: Session, host: str, chosen: list[int], job_id: str, worker_id: str) -> None:
    """Record ``chosen`` as ``job_id``'s; a GPU already reserved fails the primary key (IntegrityError)."""
    # One statement, rows in ascending order: concurrent inserts on SQLite or without the host lock
    # take the key locks in the same order, so they conflict instead of deadlocking.
    rows = [
        {"host": host, "gpu_index": gpu, "job_id": job_id, "worker_id": worker_id, "created_at": utcnow()}
        for gpu in sorted(chosen)
    ]
    session.execute(insert(GpuReservation), rows)


def reserved_for(session: Session, job_id: str) -> list[int]:
    query = select(GpuReservation.gpu_index).where(GpuReservation.job_id == job_id)
    return sorted(session.scalars(query))


def release(session: Session, job_id: str, worker_id: str) -> int:
    """Free what ``worker_id`` reserved for ``job_id`` (idempotent); how many GPUs were freed."""
    statement = delete(GpuReservation).where(GpuReservation.job_id == job_id, GpuReservation.worker_id == worker_id)
    return int(session.execute(statement).rowcount)  # type: ignore[attr-defined]


def release_stale(session: Session) -> int:
    """Free GPUs whose job no longer runs under the worker that reserved them (idempotent); how many."""
    running_under_reserver = exists().where(
        and_(
            Job.id == GpuReservation.job_id,
            Job.status == JobStatus.RUNNING.value,
            Job.worker_id == GpuReservation.worker_id,
        )
    )
    statement = delete(GpuReservation).where(~running_under_reserver).execution_options(synchronize_session=False)
    return int(session.execute(statement).rowcount)  # type: ignore[attr-defined]

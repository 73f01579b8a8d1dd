"""The workers table: who is alive, on which GPU, doing what."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import update
from sqlalchemy.orm import Session

from core.clock import db_now
from core.models import Worker


class WorkerStatus(StrEnum):
    IDLE = "idle"  # waiting for a message
    BUSY = "busy"  # running ``current_job_id``
    LOST = "lost"  # stopped beating; the reaper took its job back
    STOPPED = "stopped"  # exited cleanly


@dataclass(frozen=True)
class WorkerIdentity:
    id: str
    host: str
    pid: int
    gpu_index: int | None
    gpu_name: str | None
    gpu_memory_bytes: int | None


def register_worker(session: Session, identity: WorkerIdentity) -> None:
    row = session.get(Worker, identity.id) or Worker(id=identity.id)
    row.host, row.pid, row.gpu_index = identity.host, identity.pid, identity.gpu_index
    row.gpu_name, row.gpu_memory_bytes = identity.gpu_name, identity.gpu_memory_bytes
    row.status, row.current_job_id = WorkerStatus.IDLE, None
    session.add(row)
    session.flush()
    # The database's clock, like every heartbeat (core.clock).
    session.execute(update(Worker).where(Worker.id == identity.id).values(started_at=db_now(), heartbeat_at=db_now()))


def beat(
    session: Session, worker_id: str, status: WorkerStatus | None = None, current_job_id: str | None = None
) -> None:
    values: dict[str, object] = {"heartbeat_at": db_now()}
    if status is not None:
        values.update(status=status.value, current_job_id=current_job_id)
    session.execute(update(Worker).where(Worker.id == worker_id).values(**values))


def mark_lost(session: Session, worker_id: str) -> None:
    session.execute(
        update(Worker).where(Worker.id == worker_id).values(status=WorkerStatus.LOST.value, current_job_id=None)
    )

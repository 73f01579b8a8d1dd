"""The workers table: who is alive, on which GPU, doing what."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import update
from sqlalchemy.orm import Session

from core.db import utcnow
from core.models import Worker


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
    row.status, row.started_at, row.heartbeat_at, row.current_job_id = "idle", utcnow(), utcnow(), None
    session.add(row)


def beat(session: Session, worker_id: str, status: str | None = None, current_job_id: str | None = None) -> None:
    values: dict[str, object] = {"heartbeat_at": utcnow()}
    if status is not None:
        values.update(status=status, current_job_id=current_job_id)
    session.execute(update(Worker).where(Worker.id == worker_id).values(**values))

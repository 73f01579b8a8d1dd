"""Checkpoints as records: one row per checkpoint a run saved, kept after retention deletes its files."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from core.db import utcnow
from core.errors import NotFound
from core.ids import CHECKPOINT_PREFIX, new_id
from core.models import Checkpoint
from core.pages import Page


class CheckpointNotFound(NotFound):
    code = "checkpoint_not_found"


def record_checkpoint(
    session: Session, job_id: str, *, step: int, path: str, size: int, metrics: dict[str, Any], kept: Sequence[str]
) -> Checkpoint:
    """Add the row of a checkpoint just saved (``path`` relative to the data root), and mark gone what is not ``kept``.

    A resumed run saves again at the step it resumed from only if it trains it again, so a step has one live row;
    an older row for the same path (a run lost before it was recorded as gone) is replaced.
    """
    session.execute(
        update(Checkpoint)
        .where(Checkpoint.job_id == job_id, Checkpoint.deleted_at.is_(None), Checkpoint.path.not_in(list(kept)))
        .values(deleted_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    session.execute(
        update(Checkpoint)
        .where(Checkpoint.job_id == job_id, Checkpoint.path == path, Checkpoint.deleted_at.is_(None))
        .values(deleted_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    row = Checkpoint(
        id=new_id(CHECKPOINT_PREFIX),
        job_id=job_id,
        step=step,
        metrics=metrics,
        bytes=size,
        path=path,
        created_at=utcnow(),
    )
    session.add(row)
    return row


def list_checkpoints(session: Session, job_id: str, *, limit: int, after: str | None = None) -> Page[Checkpoint]:
    """Newest first (highest step); ``after`` is the id of the last checkpoint of the previous page."""
    query = select(Checkpoint).where(Checkpoint.job_id == job_id)
    if after is not None:
        cursor = get_checkpoint(session, job_id, after, param="after")
        query = query.where(
            (Checkpoint.step < cursor.step) | ((Checkpoint.step == cursor.step) & (Checkpoint.id < cursor.id))
        )
    rows = session.scalars(query.order_by(Checkpoint.step.desc(), Checkpoint.id.desc()).limit(limit + 1)).all()
    return Page(items=rows[:limit], has_more=len(rows) > limit)


def get_checkpoint(session: Session, job_id: str, checkpoint_id: str, param: str = "checkpoint_id") -> Checkpoint:
    """A checkpoint of ``job_id`` (whose tenant the caller has already checked)."""
    row = session.get(Checkpoint, checkpoint_id)
    if row is None or row.job_id != job_id:
        raise CheckpointNotFound(f"job {job_id} has no checkpoint {checkpoint_id!r}", param=param)
    return row

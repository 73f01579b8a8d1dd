"""Writes the trainer's progress into the database while a job runs.

Metrics are buffered and written in order: during a database outage the run
goes on, and the rows land, still in step order, once the database is back.
"""

from __future__ import annotations

import dataclasses
import logging

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from core import jobs
from core.db import run_with_retry
from trainer.results import Progress

log = logging.getLogger(__name__)


class DatabaseProgressWriter:
    """A trainer progress callback: one metrics row per logging step."""

    def __init__(self, database_url: str, job_id: str, attempt: int) -> None:
        self._database_url = database_url
        self._job_id = job_id
        self._attempt = attempt
        self._pending: list[Progress] = []

    def __call__(self, progress: Progress) -> None:
        self._pending.append(progress)
        try:
            self.flush(deadline_seconds=0)
        except SQLAlchemyError as exc:
            log.warning("metrics for step %d kept for later: %s", progress.step, exc)

    def _write(self, session: Session) -> None:
        for progress in self._pending:
            fields = dataclasses.asdict(progress)
            total_steps = fields.pop("total_steps")
            jobs.record_progress(session, self._job_id, total_steps, attempt=self._attempt, **fields)

    def flush(self, deadline_seconds: float) -> None:
        if not self._pending:
            return
        run_with_retry(self._database_url, self._write, deadline_seconds=deadline_seconds)
        self._pending.clear()

"""Writes the trainer's progress into the database while a job runs."""

from __future__ import annotations

import dataclasses

from core import jobs
from core.db import transaction
from trainer.results import Progress


class DatabaseProgressWriter:
    """A trainer progress callback: one metrics row per logging step."""

    def __init__(self, database_url: str, job_id: str) -> None:
        self._database_url = database_url
        self._job_id = job_id
        self.first_loss: float | None = None

    def __call__(self, progress: Progress) -> None:
        fields = dataclasses.asdict(progress)
        total_steps = fields.pop("total_steps")
        if self.first_loss is None and progress.loss is not None:
            self.first_loss = progress.loss
        with transaction(self._database_url) as session:
            jobs.record_progress(session, self._job_id, total_steps, **fields)

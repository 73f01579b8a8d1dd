"""Turns the trainer's checkpoint callback into checkpoint rows (the trainer itself knows no SQL)."""

from __future__ import annotations

import logging
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from core.checkpoints import record_checkpoint
from core.db import run_with_retry
from core.settings import Settings
from trainer.checkpoints import SavedCheckpoint

log = logging.getLogger(__name__)


class CheckpointRecorder:
    def __init__(self, settings: Settings, job_id: str) -> None:
        self._settings = settings
        self._job_id = job_id

    def _relative(self, path: Path) -> str:
        return str(path.relative_to(self._settings.data_root))

    def __call__(self, saved: SavedCheckpoint) -> None:
        kept = [self._relative(path) for path in saved.kept]
        try:
            run_with_retry(
                self._settings.resolved_database_url,
                lambda session: record_checkpoint(
                    session,
                    self._job_id,
                    step=saved.step,
                    path=self._relative(saved.path),
                    size=saved.bytes,
                    metrics=saved.metrics,
                    kept=kept,
                ),
                deadline_seconds=self._settings.database_retry_seconds,
            )
        except SQLAlchemyError as exc:  # the checkpoint is on disk either way; only its row is missing
            log.warning("checkpoint %s of %s not recorded: %s", saved.path.name, self._job_id, exc)

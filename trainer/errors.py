"""Failures of a run, each with a stable code the service stores and shows."""

from __future__ import annotations

from pathlib import Path


class TrainerError(Exception):
    """Base class: ``code`` is machine-readable, the message says what to do."""

    code = "training_error"
    retriable = False


class ModelLoadError(TrainerError):
    code = "model_load_failed"


class InvalidTrainingData(TrainerError):
    code = "invalid_training_data"


class OutOfMemory(TrainerError):
    code = "out_of_memory"


class TrainingStopped(TrainerError):
    """The caller asked the run to stop (cancel, shutdown); ``checkpoint_dir`` resumes it."""

    code = "stopped"

    def __init__(self, message: str, checkpoint_dir: Path | None = None) -> None:
        super().__init__(message)
        self.checkpoint_dir = checkpoint_dir

"""Failures of a run, each with a stable code the service stores and shows."""

from __future__ import annotations

from pathlib import Path


class TrainerError(Exception):
    """Base class: ``code`` is machine-readable, the message says what to do.

    ``retriable`` is the only thing the worker looks at to decide on another
    attempt: failures of the machine are retriable, failures of the job are not.
    """

    code = "training_error"
    retriable = False


class DeviceError(TrainerError):
    """The GPU or its interconnect failed (a CUDA, NCCL or ECC error): another attempt may succeed."""

    code = "device_error"

    def __init__(self, message: str, retriable: bool = True) -> None:
        super().__init__(message)
        self.retriable = retriable


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

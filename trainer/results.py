"""What the trainer reports while it runs and when it is done."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Progress:
    """One logging step, as passed to the caller's progress callback."""

    step: int
    total_steps: int
    epoch: float
    loss: float | None
    learning_rate: float | None
    grad_norm: float | None
    tokens_per_second: float | None
    trained_tokens: int
    peak_memory_bytes: int | None
    eval_loss: float | None = None


@dataclass(frozen=True)
class RunEnvironment:
    """What actually ran: recorded on the job so results can be reproduced."""

    device: str
    device_name: str
    dtype: str
    quantization: str


@dataclass(frozen=True)
class TrainResult:
    adapter_dir: Path
    steps: int
    trained_tokens: int
    final_loss: float | None
    environment: RunEnvironment

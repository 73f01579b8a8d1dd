"""What the trainer reports while it runs and when it is done."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from trainer.config import Hyperparameters


@dataclass(frozen=True)
class Progress:
    """One logging step or evaluation, as passed to the caller's progress callback."""

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
    token_accuracy: float | None = None  # share of label tokens predicted right (top-1), training batch
    eval_token_accuracy: float | None = None  # the same over the validation set
    eta_seconds: float | None = None  # estimated time to the last step, from this run's pace so far


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
    hyperparameters: Hyperparameters = field(default_factory=Hyperparameters)  # resolved: no "auto" left
    decisions: list[str] = field(default_factory=list)  # what "auto" became, and notable warnings
    final_eval_loss: float | None = None
    final_eval_token_accuracy: float | None = None
    last_checkpoint: Path | None = None
    merged_dir: Path | None = None
    # greedy completions after training: {"prompt", "completion", "reference"} (reference may be None)
    samples: list[dict[str, str | None]] = field(default_factory=list)

"""Bridge from the HF Trainer's callbacks to the caller's progress callback."""

from __future__ import annotations

import resource
import sys
import time
from collections.abc import Callable

import torch
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from trainer.results import Progress

ProgressCallback = Callable[[Progress], None]
StopCheck = Callable[[], bool]


def peak_memory_bytes() -> int:
    """Peak accelerator memory on CUDA, else the process's peak resident set."""
    if torch.cuda.is_available():
        return int(torch.cuda.max_memory_allocated())
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss if sys.platform == "darwin" else rss * 1024)  # Linux reports KiB


class ReportingCallback(TrainerCallback):
    """Turns each log into a Progress, and asks the loop to stop when told to."""

    def __init__(self, on_progress: ProgressCallback | None, should_stop: StopCheck | None) -> None:
        self._on_progress = on_progress
        self._should_stop = should_stop
        self._last_time = time.monotonic()
        self._last_tokens = 0
        self.stopped = False
        self.last_loss: float | None = None

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **_: object
    ) -> None:
        self._last_time = time.monotonic()
        self._last_tokens = state.num_input_tokens_seen

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **_: object) -> None:
        if self._should_stop is not None and self._should_stop():
            self.stopped = True
            control.should_training_stop = True

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: dict[str, float] | None = None,
        **_: object,
    ) -> None:
        logs = logs or {}
        if "loss" not in logs and "eval_loss" not in logs:
            return  # the end-of-training summary, not a step
        now = time.monotonic()
        tokens = int(state.num_input_tokens_seen)
        elapsed = now - self._last_time
        rate = (tokens - self._last_tokens) / elapsed if elapsed > 0 and tokens > self._last_tokens else None
        self._last_time, self._last_tokens = now, tokens
        if "loss" in logs:
            self.last_loss = float(logs["loss"])
        if self._on_progress is None:
            return
        self._on_progress(
            Progress(
                step=state.global_step,
                total_steps=state.max_steps,
                epoch=float(state.epoch or 0.0),
                loss=_maybe_float(logs.get("loss")),
                learning_rate=_maybe_float(logs.get("learning_rate")),
                grad_norm=_maybe_float(logs.get("grad_norm")),
                tokens_per_second=rate,
                trained_tokens=tokens,
                peak_memory_bytes=peak_memory_bytes(),
                eval_loss=_maybe_float(logs.get("eval_loss")),
            )
        )


def _maybe_float(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) else None

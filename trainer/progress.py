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


def peak_memory_bytes() -> int:
    """Peak accelerator memory on CUDA, else the process's peak resident set."""
    if torch.cuda.is_available():
        return int(torch.cuda.max_memory_allocated())
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss if sys.platform == "darwin" else rss * 1024)  # Linux reports KiB


class ReportingCallback(TrainerCallback):
    """Turns each training or evaluation log into a Progress, and remembers the latest losses."""

    def __init__(self, on_progress: ProgressCallback | None) -> None:
        self._on_progress = on_progress
        self._last_time = self._start_time = time.monotonic()
        self._last_tokens = 0
        self._start_step = 0
        self.last_loss: float | None = None
        self.last_eval_loss: float | None = None
        self.last_eval_token_accuracy: float | None = None
        self.last_eval_step: int | None = None

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **_: object
    ) -> None:
        self._last_time = self._start_time = time.monotonic()
        self._last_tokens = state.num_input_tokens_seen
        self._start_step = state.global_step  # not 0 when resuming: the pace counts only this session's steps

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
        if "loss" in logs:
            self.last_loss = float(logs["loss"])
        if "eval_loss" in logs:
            self.last_eval_loss = float(logs["eval_loss"])
            self.last_eval_token_accuracy = _maybe_float(logs.get("eval_mean_token_accuracy"))
            self.last_eval_step = state.global_step
        progress = self._progress(state, logs)
        if self._on_progress is not None:
            self._on_progress(progress)

    def _progress(self, state: TrainerState, logs: dict[str, float]) -> Progress:
        now = time.monotonic()
        tokens = int(state.num_input_tokens_seen)
        elapsed = now - self._last_time
        rate = (tokens - self._last_tokens) / elapsed if elapsed > 0 and tokens > self._last_tokens else None
        self._last_time, self._last_tokens = now, tokens
        done = state.global_step - self._start_step
        eta = (now - self._start_time) / done * (state.max_steps - state.global_step) if done > 0 else None
        return Progress(
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
            token_accuracy=_maybe_float(logs.get("mean_token_accuracy")),
            eval_token_accuracy=_maybe_float(logs.get("eval_mean_token_accuracy")),
            eta_seconds=eta,
        )


def _maybe_float(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) else None

"""Cooperative stop and checkpoint timing, as a callback on the HF Trainer's loop."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from trainer.checkpoints import (
    CheckpointCallback,
    SavedCheckpoint,
    checkpoints_dir,
    complete_checkpoints,
    directory_bytes,
)

StopCheck = Callable[[], bool]

# Trainer log keys -> the names checkpoints report their metrics under (OpenAI's checkpoint metrics).
_CHECKPOINT_METRICS = {
    "loss": "train_loss",
    "mean_token_accuracy": "train_mean_token_accuracy",
    "eval_loss": "valid_loss",
    "eval_mean_token_accuracy": "valid_mean_token_accuracy",
}


class StopAndCheckpointCallback(TrainerCallback):
    """Checkpoints at each epoch end, and on a requested stop checkpoints the step just done, then stops.

    Step-interval checkpoints come from the Trainer's own ``save_steps``; this adds what it cannot
    express alongside them. The Trainer runs the default flow callback first, so the flags set here win.
    """

    def __init__(self, should_stop: StopCheck | None) -> None:
        self._should_stop = should_stop
        self._saved_step = -1
        self.stopped = False

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **_: object) -> None:
        if self._should_stop is None or state.global_step >= state.max_steps or not self._should_stop():
            return
        self.stopped = True
        control.should_training_stop = True
        control.should_save = True
        control.should_evaluate = False  # a cancel should not wait for a pass over the validation set

    def on_epoch_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **_: object) -> None:
        if self.stopped:
            control.should_evaluate = False
            control.should_save = False  # already saved at the step the stop came
            return
        control.should_save = state.global_step != self._saved_step

    def on_save(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **_: object) -> None:
        self._saved_step = state.global_step


class CheckpointReportingCallback(TrainerCallback):
    """Tells the caller about each saved checkpoint, after the Trainer has rotated out old ones."""

    def __init__(self, output_dir: Path, on_checkpoint: CheckpointCallback | None) -> None:
        self._output_dir = output_dir
        self._on_checkpoint = on_checkpoint

    def on_save(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **_: object) -> None:
        if self._on_checkpoint is None:
            return
        path = checkpoints_dir(self._output_dir) / f"checkpoint-{state.global_step}"
        if not path.is_dir():
            return
        self._on_checkpoint(
            SavedCheckpoint(
                step=state.global_step,
                path=path,
                bytes=directory_bytes(path),
                metrics=latest_metrics(state.log_history, state.global_step),
                kept=complete_checkpoints(self._output_dir),
            )
        )


def latest_metrics(log_history: list[dict[str, float]], step: int) -> dict[str, float]:
    """The newest value of each reported metric logged at or before ``step``."""
    metrics: dict[str, float] = {"step": float(step)}
    for entry in log_history:
        if entry.get("step", 0) > step:
            break
        for key, name in _CHECKPOINT_METRICS.items():
            if isinstance(entry.get(key), int | float):
                metrics[name] = float(entry[key])
    return metrics

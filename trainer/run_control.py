"""Cooperative stop and checkpoint timing, as a callback on the HF Trainer's loop."""

from __future__ import annotations

from collections.abc import Callable

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

StopCheck = Callable[[], bool]


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

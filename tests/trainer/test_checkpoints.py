"""Checkpoints: a stopped run saves where it stopped and resumes to exactly the same result."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from trainer.checkpoints import latest_checkpoint
from trainer.config import Hyperparameters, Quantization, RunSpec
from trainer.errors import TrainingStopped
from trainer.results import Progress
from trainer.train import train

# Two epochs of 6 steps each: long enough to stop mid-epoch and cross an epoch boundary after resuming.
SHORT = Hyperparameters(n_epochs=2, learning_rate=3e-3, batch_size=4, max_seq_length=128)
STOP_AFTER_STEP = 4


def _spec(tiny_model: Path, sample_dataset: Path, output_dir: Path) -> RunSpec:
    return RunSpec(tiny_model, sample_dataset, output_dir, SHORT, checkpoint_every_steps=None, sample_generations=0)


def _stop_after(steps: int) -> Callable[[], bool]:
    """A should_stop that turns true at the end of step ``steps`` (it is asked once per step)."""
    calls = iter(range(1, 10**6))
    return lambda: next(calls) >= steps


def _losses(seen: list[Progress]) -> dict[int, float]:
    return {p.step: p.loss for p in seen if p.loss is not None}


def test_stopped_run_resumes_to_the_same_losses_as_an_uninterrupted_run(
    tiny_model: Path, sample_dataset: Path, tmp_path: Path
) -> None:
    straight: list[Progress] = []
    uninterrupted = train(_spec(tiny_model, sample_dataset, tmp_path / "straight"), on_progress=straight.append)

    spec = _spec(tiny_model, sample_dataset, tmp_path / "interrupted")
    before: list[Progress] = []
    with pytest.raises(TrainingStopped) as stopped:
        train(spec, on_progress=before.append, should_stop=_stop_after(STOP_AFTER_STEP))
    assert stopped.value.checkpoint_dir == spec.output_dir / "checkpoints" / f"checkpoint-{STOP_AFTER_STEP}"
    assert latest_checkpoint(spec.output_dir) == stopped.value.checkpoint_dir
    assert max(_losses(before)) == STOP_AFTER_STEP

    after: list[Progress] = []
    resumed = train(spec, on_progress=after.append)

    assert min(_losses(after)) == STOP_AFTER_STEP + 1
    expected = {step: loss for step, loss in _losses(straight).items() if step > STOP_AFTER_STEP}
    assert _losses(after) == pytest.approx(expected, rel=1e-5, abs=1e-6)
    assert resumed.steps == uninterrupted.steps
    assert resumed.final_loss == pytest.approx(uninterrupted.final_loss, rel=1e-5)
    assert resumed.last_checkpoint == spec.output_dir / "checkpoints" / f"checkpoint-{resumed.steps}"


def test_checkpoints_every_n_steps_and_each_epoch_keeping_the_newest(
    tiny_model: Path, sample_dataset: Path, tmp_path: Path
) -> None:
    spec = replace(
        _spec(tiny_model, sample_dataset, tmp_path),
        hyperparameters=replace(SHORT, quantization=Quantization.NONE),
        checkpoint_every_steps=4,
        keep_checkpoints=2,
    )
    result = train(spec)
    kept = sorted(p.name for p in (tmp_path / "checkpoints").glob("checkpoint-*"))
    # steps 4, 6 (epoch end), 8, 12 (epoch end and last) were saved; retention keeps the newest two
    assert result.steps == 12
    assert kept == ["checkpoint-12", "checkpoint-8"]
    assert result.last_checkpoint == tmp_path / "checkpoints" / "checkpoint-12"


def test_latest_checkpoint_ignores_incomplete_and_foreign_directories(tmp_path: Path) -> None:
    root = tmp_path / "checkpoints"
    for name in ("checkpoint-5", "checkpoint-30", "checkpoint-100", "notes", "checkpoint-x"):
        (root / name).mkdir(parents=True)
    for name in ("checkpoint-5", "checkpoint-30", "notes", "checkpoint-x"):
        (root / name / "trainer_state.json").write_text("{}")
    # checkpoint-100 has no trainer_state.json: the process died while saving it
    assert latest_checkpoint(tmp_path) == root / "checkpoint-30"
    assert latest_checkpoint(tmp_path / "nowhere") is None

"""'auto' hyperparameters: validated like numbers by the API, resolved from the data by the trainer."""

from __future__ import annotations

import subprocess
import sys

import pytest
from pydantic import TypeAdapter, ValidationError

from trainer.auto_hyperparameters import resolve_hyperparameters
from trainer.config import Hyperparameters, Quantization

VALIDATE = TypeAdapter(Hyperparameters).validate_python


def test_api_accepts_auto_and_numbers_within_range() -> None:
    assert VALIDATE({"n_epochs": "auto"}).n_epochs == "auto"
    hp = VALIDATE({"n_epochs": 5, "learning_rate": 1e-4, "batch_size": "auto", "target_modules": ["q_proj"]})
    assert (hp.n_epochs, hp.learning_rate, hp.batch_size, hp.target_modules) == (5, 1e-4, "auto", ["q_proj"])


@pytest.mark.parametrize(
    "body",
    [
        {"n_epochs": 0},
        {"n_epochs": "lots"},
        {"learning_rate": -1},
        {"batch_size": 0},
        {"gradient_accumulation_steps": "many"},
        {"validation_split": 0.9},
        {"target_modules": "attention"},
        {"no_such_knob": 1},
    ],
)
def test_api_rejects_out_of_range_unknown_or_misspelled_values(body: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        VALIDATE(body)


@pytest.mark.parametrize(("n_examples", "epochs"), [(10, 10), (20, 5), (72, 3), (5000, 3), (20_000, 1), (3, 25)])
def test_auto_epochs_aim_for_100_to_25000_examples_seen(n_examples: int, epochs: int) -> None:
    resolved, _ = resolve_hyperparameters(Hyperparameters(), n_examples)
    assert resolved.n_epochs == epochs


def test_auto_learning_rate_depends_on_the_method() -> None:
    qlora, decisions = resolve_hyperparameters(Hyperparameters(quantization=Quantization.NF4), 100)
    lora, _ = resolve_hyperparameters(Hyperparameters(quantization=Quantization.NONE), 100)
    assert (qlora.learning_rate, lora.learning_rate) == (2e-4, 1e-4)
    assert "auto: lr 0.0002 for QLoRA" in decisions


def test_auto_batch_fits_long_sequences_by_accumulating_gradients() -> None:
    short, _ = resolve_hyperparameters(Hyperparameters(max_seq_length=512), 10_000)
    long, _ = resolve_hyperparameters(Hyperparameters(max_seq_length=8192), 10_000)
    assert short.batch_size == 16 and short.gradient_accumulation_steps == 1
    assert long.batch_size == 1 and long.gradient_accumulation_steps == 16
    assert short.batch_size * short.gradient_accumulation_steps == long.batch_size * long.gradient_accumulation_steps


def test_explicit_values_are_kept_and_explained_only_when_auto() -> None:
    hp = Hyperparameters(n_epochs=2, learning_rate=1e-3, batch_size=4, gradient_accumulation_steps=2)
    resolved, decisions = resolve_hyperparameters(hp, 72)
    assert resolved == hp
    assert decisions == []


def test_decisions_read_as_sentences() -> None:
    _, decisions = resolve_hyperparameters(Hyperparameters(), 72)
    assert decisions[0] == "auto: 3 epochs (72 examples)"
    assert all(line.startswith("auto: ") for line in decisions)


def test_config_and_auto_resolution_do_not_import_torch() -> None:
    modules = "trainer.config, trainer.auto_hyperparameters, trainer.checkpoints"
    code = f"import sys, {modules}; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "False\n"

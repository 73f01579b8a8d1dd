"""'auto' hyperparameters: validated like numbers by the API, resolved from the data by the trainer."""

from __future__ import annotations

import subprocess
import sys

import pytest
from pydantic import TypeAdapter, ValidationError

from trainer.auto_hyperparameters import (
    MIN_OPTIMIZER_STEPS,
    TOKENS_PER_STEP,
    DataSize,
    DeviceProfile,
    resolve_hyperparameters,
)
from trainer.config import Hyperparameters, Quantization

VALIDATE = TypeAdapter(Hyperparameters).validate_python
CPU = DeviceProfile("cpu", memory_bytes=0, model_bytes=10**6, activation_bytes_per_token=0)
# An H100 training Qwen3-8B in NF4: about 5.5 GiB of weights, ~540 kB of activations per token (see
# trainer.device_profile.activation_bytes_per_token for the shape-based estimate).
H100_8B = DeviceProfile(
    "cuda", memory_bytes=80 * 2**30, model_bytes=int(5.5 * 2**30), activation_bytes_per_token=540_000
)
SMALL_GPU_8B = DeviceProfile(
    "cuda", memory_bytes=12 * 2**30, model_bytes=int(5.5 * 2**30), activation_bytes_per_token=540_000
)


def packed(n_examples: int, tokens_per_example: int = 180, max_seq_length: int = 1024) -> DataSize:
    """Packed rows of a dataset whose examples average ``tokens_per_example`` (nearly full rows)."""
    tokens = n_examples * tokens_per_example
    rows = max(1, -(-tokens // max_seq_length))
    return DataSize(examples=n_examples, rows=rows, tokens=tokens, longest_row=min(tokens, max_seq_length))


def steps_per_run(hp: Hyperparameters, data: DataSize) -> float:
    assert isinstance(hp.batch_size, int) and isinstance(hp.gradient_accumulation_steps, int)
    assert isinstance(hp.n_epochs, int)
    return data.rows * hp.n_epochs / (hp.batch_size * hp.gradient_accumulation_steps)


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
    resolved, _ = resolve_hyperparameters(Hyperparameters(), packed(n_examples), CPU)
    assert resolved.n_epochs == epochs


def test_auto_learning_rate_depends_on_the_method() -> None:
    qlora, decisions = resolve_hyperparameters(Hyperparameters(quantization=Quantization.NF4), packed(100), CPU)
    lora, _ = resolve_hyperparameters(Hyperparameters(quantization=Quantization.NONE), packed(100), CPU)
    assert (qlora.learning_rate, lora.learning_rate) == (2e-4, 1e-4)
    assert "auto: lr 0.0002 for QLoRA" in decisions


def test_auto_batch_on_a_large_gpu_fills_the_micro_batch_token_budget() -> None:
    data = packed(20_000)
    resolved, decisions = resolve_hyperparameters(Hyperparameters(), data, H100_8B)
    assert (resolved.batch_size, resolved.gradient_accumulation_steps) == (16, 2)  # 16k tokens per pass, 32k per step
    assert "micro-batch budget 16384 tokens on cuda: 80 GiB, model 5.5 GiB" in decisions[-1]


def test_auto_batch_on_a_cpu_or_a_small_gpu_stays_small_and_accumulates() -> None:
    data = packed(20_000)
    on_cpu, _ = resolve_hyperparameters(Hyperparameters(), data, CPU)
    on_small_gpu, _ = resolve_hyperparameters(Hyperparameters(), data, SMALL_GPU_8B)
    assert (on_cpu.batch_size, on_cpu.gradient_accumulation_steps) == (2, 16)
    assert (on_small_gpu.batch_size, on_small_gpu.gradient_accumulation_steps) == (6, 5)  # ~3.3 GB of activations


def test_a_small_dataset_gets_larger_micro_batches_than_one_row_and_still_enough_steps() -> None:
    """The measured regression: 300 examples resolved to 1 row of 1024 tokens per step on an H100."""
    data = packed(300, tokens_per_example=180)
    resolved, _ = resolve_hyperparameters(Hyperparameters(), data, H100_8B)
    assert isinstance(resolved.batch_size, int) and resolved.batch_size > 1
    assert steps_per_run(resolved, data) >= MIN_OPTIMIZER_STEPS * 0.8  # rows are whole, so roughly


def test_auto_batch_fits_long_sequences_by_accumulating_gradients() -> None:
    short_rows, long_rows = packed(50_000, max_seq_length=512), packed(50_000, max_seq_length=8192)
    short, _ = resolve_hyperparameters(Hyperparameters(max_seq_length=512), short_rows, H100_8B)
    long, _ = resolve_hyperparameters(Hyperparameters(max_seq_length=8192), long_rows, H100_8B)
    assert short.batch_size == 32 and short.gradient_accumulation_steps == 2
    assert long.batch_size == 2 and long.gradient_accumulation_steps == 2
    for resolved, rows in ((short, 512), (long, 8192)):
        assert isinstance(resolved.batch_size, int) and isinstance(resolved.gradient_accumulation_steps, int)
        assert resolved.batch_size * resolved.gradient_accumulation_steps * rows == TOKENS_PER_STEP


def test_auto_accumulation_completes_an_explicit_batch_size_to_the_token_target() -> None:
    resolved, _ = resolve_hyperparameters(Hyperparameters(batch_size=4), packed(20_000), H100_8B)
    assert resolved.gradient_accumulation_steps == 8  # 4 x 8 rows of 1024 tokens = 32k tokens


def test_explicit_values_are_kept_and_explained_only_when_auto() -> None:
    hp = Hyperparameters(n_epochs=2, learning_rate=1e-3, batch_size=4, gradient_accumulation_steps=2)
    resolved, decisions = resolve_hyperparameters(hp, packed(72), CPU)
    assert resolved == hp
    assert decisions == []


def test_decisions_read_as_sentences() -> None:
    _, decisions = resolve_hyperparameters(Hyperparameters(), packed(72), CPU)
    assert decisions[0] == "auto: 3 epochs (72 examples)"
    assert all(line.startswith("auto: ") for line in decisions)


def test_config_and_auto_resolution_do_not_import_torch() -> None:
    modules = "trainer.config, trainer.auto_hyperparameters, trainer.checkpoints"
    code = f"import sys, {modules}; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "False\n"

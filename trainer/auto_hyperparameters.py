"""Resolve ``"auto"`` hyperparameters the way hosted fine-tuning services do (pure: no torch).

Epochs follow OpenAI's published rule: aim to show the model between 100 and
25,000 examples in total, 3 epochs where that fits, clamped to 1..25 epochs.
Learning rates are the QLoRA paper's 2e-4 for 4-bit bases and the more cautious
1e-4 common for 16-bit LoRA (LLaMA-Factory's examples).

Batches are sized in tokens, not examples: a micro-batch fills a token budget chosen from the device
(what is left of GPU memory after the weights, over an estimate of activation memory per token; a CPU
keeps small batches), and an optimizer step aims at ``TOKENS_PER_STEP`` tokens, but no more than lets
the run take ``MIN_OPTIMIZER_STEPS`` steps, so a small dataset still gets a learning-rate schedule."""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from typing import TypeVar

from trainer.config import AUTO, Auto, Hyperparameters, Quantization

TARGET_EPOCHS = 3
MIN_TARGET_EXAMPLES = 100
MAX_TARGET_EXAMPLES = 25_000
MIN_EPOCHS, MAX_EPOCHS = 1, 25
LEARNING_RATE = {Quantization.NF4: 2e-4, Quantization.NONE: 1e-4}
# An optimizer step of ~32k tokens: 16 full rows of 2048, the effective batch of common LoRA SFT recipes.
TOKENS_PER_STEP = 32_768
# Fewer steps than this leave the warmup and cosine decay too coarse; small datasets take smaller steps.
MIN_OPTIMIZER_STEPS = 40
# A CPU gains nothing from large micro-batches and has little memory to spare.
CPU_TOKENS_PER_MICRO_BATCH = 2048
# On a GPU, throughput grows with the micro-batch up to roughly here (4 x 2048 measured 3.6x 1 x 1024 on an
# H100 with an 8B model; larger budgets are estimated, not measured), while memory keeps growing.
MAX_TOKENS_PER_MICRO_BATCH = 16_384
# Share of the memory left after the weights that activations may use; the rest covers the optimizer
# state, the LoRA weights, allocator fragmentation and the error in the per-token estimate.
ACTIVATION_MEMORY_SHARE = 0.5


@dataclass(frozen=True)
class DeviceProfile:
    """What the batch size depends on, measured once the model is loaded (see ``trainer.device_profile``)."""

    device: str  # "cuda" or "cpu"
    memory_bytes: int  # accelerator memory; 0 on a CPU
    model_bytes: int  # the loaded (possibly quantized) weights
    activation_bytes_per_token: int  # estimated from the model's shape and the run's activation checkpointing
    processes: int = 1  # data-parallel processes sharing each optimizer step, each with this device

    def describe(self) -> str:
        if self.device != "cuda":
            return self.device
        gpus = f"{self.processes} x " if self.processes > 1 else ""
        return f"{gpus}{self.device}: {self.memory_bytes / 2**30:.0f} GiB, model {self.model_bytes / 2**30:.1f} GiB"


@dataclass(frozen=True)
class DataSize:
    """The prepared training rows (packed rows when packing)."""

    examples: int
    rows: int
    tokens: int
    longest_row: int


Number = TypeVar("Number", int, float)


def concrete(value: Number | Auto) -> Number:
    """A hyperparameter that must have been resolved by now."""
    if value == AUTO:
        raise ValueError("hyperparameter is still 'auto'; call resolve_hyperparameters first")
    return value


def auto_epochs(n_examples: int) -> int:
    if n_examples * TARGET_EPOCHS < MIN_TARGET_EXAMPLES:
        return min(MAX_EPOCHS, MIN_TARGET_EXAMPLES // max(n_examples, 1))
    if n_examples * TARGET_EPOCHS > MAX_TARGET_EXAMPLES:
        return max(MIN_EPOCHS, MAX_TARGET_EXAMPLES // n_examples)
    return TARGET_EPOCHS


BYTES_16BIT = 2


def activation_bytes_per_token(
    hidden: int, layers: int, intermediate: int, checkpoint_every: int = 1, offload: bool = False
) -> int:
    """An estimate for 16-bit training, with activation checkpointing of every ``checkpoint_every``-th layer
    (0: none) as ``trainer.kernels`` plans it; the default is what the trainer runs on a GPU.

    A checkpointed decoder layer keeps only its input (hidden_size values per token, on the host when
    ``offload``); the backward pass recomputes one layer at a time and holds its activations and their
    gradients: about 6 x hidden_size for attention (q, k, v, output, norms) and 3 x intermediate_size for the
    gated MLP. A layer that is not checkpointed holds as much as a recomputed one, from forward to backward.
    The LM head is no concern: TRL computes the loss in tiles without materialising the logits. Pure
    arithmetic, so the API's estimate uses it too.
    """
    one_layer = 2 * (6 * hidden + 3 * intermediate) * BYTES_16BIT
    checkpointed = 0 if checkpoint_every <= 0 else -(-layers // checkpoint_every)
    kept_inputs = 0 if offload else checkpointed * hidden * BYTES_16BIT
    return kept_inputs + (layers - checkpointed) * one_layer + one_layer


def held_out_indices(n_examples: int, share: float, seed: int) -> set[int]:
    """The examples a ``validation_split`` holds out: a seeded random pick, at least one on each side."""
    order = list(range(n_examples))
    random.Random(seed).shuffle(order)
    n_eval = min(n_examples - 1, max(1, round(n_examples * share)))
    return set(order[:n_eval])


def micro_batch_token_budget(device: DeviceProfile) -> int:
    """Tokens one forward/backward pass may hold on ``device``."""
    if device.device != "cuda" or device.activation_bytes_per_token <= 0:
        return CPU_TOKENS_PER_MICRO_BATCH
    spare = max(0, device.memory_bytes - device.model_bytes) * ACTIVATION_MEMORY_SHARE
    return int(min(MAX_TOKENS_PER_MICRO_BATCH, spare // device.activation_bytes_per_token))


def tokens_per_step(data: DataSize, n_epochs: int) -> int:
    """The optimizer step's token target: TOKENS_PER_STEP, less when the run would take too few steps."""
    enough_steps = data.tokens * n_epochs // MIN_OPTIMIZER_STEPS
    return max(1, min(TOKENS_PER_STEP, enough_steps))


@dataclass(frozen=True)
class _BatchPlan:
    batch_size: int
    accumulation: int
    budget: int
    step_tokens: int


def _batch_and_accumulation(hp: Hyperparameters, data: DataSize, device: DeviceProfile, n_epochs: int) -> _BatchPlan:
    budget = micro_batch_token_budget(device)
    step_tokens = tokens_per_step(data, n_epochs)
    mean_row = max(1, data.tokens // max(1, data.rows))  # packed rows are nearly full; unpacked ones vary
    # Memory is sized for the longest row (padding makes every row of an unpacked batch that long).
    rows_that_fit = max(1, budget // max(1, data.longest_row))
    rows_per_step = max(1, round(step_tokens / mean_row / device.processes))  # per process
    if hp.batch_size != AUTO:
        batch = concrete(hp.batch_size)
    elif hp.gradient_accumulation_steps != AUTO:
        batch = max(1, min(rows_that_fit, round(rows_per_step / concrete(hp.gradient_accumulation_steps))))
    else:
        batch = min(rows_that_fit, rows_per_step)
    if hp.gradient_accumulation_steps != AUTO:
        accumulation = concrete(hp.gradient_accumulation_steps)
    else:
        accumulation = max(1, round(rows_per_step / batch))
    return _BatchPlan(batch, accumulation, budget, step_tokens)


def resolve_hyperparameters(
    hp: Hyperparameters, data: DataSize, device: DeviceProfile
) -> tuple[Hyperparameters, list[str]]:
    """Replace every ``"auto"`` by a value; return the result and one readable line per decision."""
    decisions: list[str] = []
    n_examples = data.examples
    n_epochs = hp.n_epochs
    if n_epochs == AUTO:
        n_epochs = auto_epochs(n_examples)
        decisions.append(f"auto: {n_epochs} epochs ({n_examples} examples)")
    learning_rate = hp.learning_rate
    if learning_rate == AUTO:
        learning_rate = LEARNING_RATE[hp.quantization]
        method = "QLoRA" if hp.quantization is Quantization.NF4 else "16-bit LoRA"
        decisions.append(f"auto: lr {learning_rate:g} for {method}")
    plan = _batch_and_accumulation(hp, data, device, concrete(n_epochs))
    if AUTO in (hp.batch_size, hp.gradient_accumulation_steps):
        rows = "packed rows" if hp.packing else "rows"
        mean_row = data.tokens // max(1, data.rows)
        step = plan.batch_size * plan.accumulation * mean_row * device.processes
        decisions.append(
            f"auto: batch_size {plan.batch_size} x gradient_accumulation_steps {plan.accumulation} {rows} "
            f"of ~{mean_row} tokens = ~{step} tokens per optimizer step "
            f"(micro-batch budget {plan.budget} tokens on {device.describe()}; step target {plan.step_tokens} "
            f"tokens for {data.tokens} training tokens x {n_epochs} epochs)"
        )
    resolved = replace(
        hp,
        n_epochs=n_epochs,
        learning_rate=learning_rate,
        batch_size=plan.batch_size,
        gradient_accumulation_steps=plan.accumulation,
    )
    return resolved, decisions

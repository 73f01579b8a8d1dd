"""Resolve ``"auto"`` hyperparameters the way hosted fine-tuning services do (pure: no torch).

Epochs follow OpenAI's published rule: aim to show the model between 100 and
25,000 examples in total, 3 epochs where that fits, clamped to 1..25 epochs.
Learning rates are the QLoRA paper's 2e-4 for 4-bit bases and the more cautious
1e-4 common for 16-bit LoRA (LLaMA-Factory's examples). The optimizer step takes
about 0.2% of the examples (OpenAI again; a power of two from 1 to 32 sequences),
split into micro-batches of at most ~8k tokens so activations fit a 24 GB GPU.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import TypeVar

from trainer.config import AUTO, Auto, Hyperparameters, Quantization

TARGET_EPOCHS = 3
MIN_TARGET_EXAMPLES = 100
MAX_TARGET_EXAMPLES = 25_000
MIN_EPOCHS, MAX_EPOCHS = 1, 25
LEARNING_RATE = {Quantization.NF4: 2e-4, Quantization.NONE: 1e-4}
SEQUENCES_PER_STEP_SHARE = 0.002
MAX_SEQUENCES_PER_STEP = 32
TOKENS_PER_MICRO_BATCH = 8192

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


def _sequences_per_step(n_examples: int) -> int:
    # A power of two, so it splits evenly into micro-batches (which are powers of two up to the memory cap).
    wanted = n_examples * SEQUENCES_PER_STEP_SHARE
    return 1 if wanted < 1 else min(MAX_SEQUENCES_PER_STEP, 2 ** round(math.log2(wanted)))


def _batch_and_accumulation(hp: Hyperparameters, n_examples: int) -> tuple[int, int]:
    per_step = _sequences_per_step(n_examples)
    memory_cap = 2 ** int(math.log2(max(1, TOKENS_PER_MICRO_BATCH // hp.max_seq_length)))
    if hp.batch_size != AUTO:
        batch = concrete(hp.batch_size)
    elif hp.gradient_accumulation_steps != AUTO:
        batch = max(1, min(memory_cap, per_step // concrete(hp.gradient_accumulation_steps)))
    else:
        batch = min(memory_cap, per_step)
    if hp.gradient_accumulation_steps != AUTO:
        return batch, concrete(hp.gradient_accumulation_steps)
    return batch, max(1, per_step // batch)


def resolve_hyperparameters(hp: Hyperparameters, n_examples: int) -> tuple[Hyperparameters, list[str]]:
    """Replace every ``"auto"`` by a value; return the result and one readable line per decision."""
    decisions: list[str] = []
    n_epochs = hp.n_epochs
    if n_epochs == AUTO:
        n_epochs = auto_epochs(n_examples)
        decisions.append(f"auto: {n_epochs} epochs ({n_examples} examples)")
    learning_rate = hp.learning_rate
    if learning_rate == AUTO:
        learning_rate = LEARNING_RATE[hp.quantization]
        method = "QLoRA" if hp.quantization is Quantization.NF4 else "16-bit LoRA"
        decisions.append(f"auto: lr {learning_rate:g} for {method}")
    batch_size, accumulation = _batch_and_accumulation(hp, n_examples)
    if AUTO in (hp.batch_size, hp.gradient_accumulation_steps):
        decisions.append(
            f"auto: batch_size {batch_size} x gradient_accumulation_steps {accumulation} = "
            f"{batch_size * accumulation} sequences per step "
            f"({n_examples} examples, max_seq_length={hp.max_seq_length})"
        )
    resolved = replace(
        hp,
        n_epochs=n_epochs,
        learning_rate=learning_rate,
        batch_size=batch_size,
        gradient_accumulation_steps=accumulation,
    )
    return resolved, decisions

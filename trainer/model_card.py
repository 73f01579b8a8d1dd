"""The README.md saved beside the adapter: what it was trained from, on what, and how well."""

from __future__ import annotations

import dataclasses
from importlib.metadata import PackageNotFoundError, version

from trainer.config import Hyperparameters


def tuneq_version() -> str:
    try:
        return version("tuneq")
    except PackageNotFoundError:
        return "unknown"


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def render_model_card(
    *,
    base_model: str,
    data_format: str,
    train_examples: int,
    eval_examples: int,
    train_tokens: int,
    hyperparameters: Hyperparameters,
    final_loss: float | None,
    final_eval_loss: float | None,
    decisions: list[str],
) -> str:
    """Markdown with Hugging Face model-card front matter, so the hub shows the base model and library."""
    rows = "\n".join(f"| {name} | {value} |" for name, value in dataclasses.asdict(hyperparameters).items())
    notes = "\n".join(f"- {line}" for line in decisions) or "- none"
    return f"""---
base_model: {base_model}
library_name: peft
tags: [lora, tuneq]
---

# LoRA adapter for {base_model}

Fine-tuned with tuneq {tuneq_version()}.

## Data

- format: {data_format}
- training examples: {train_examples} ({train_tokens} tokens)
- validation examples: {eval_examples}

## Results

- final training loss: {_number(final_loss)}
- final validation loss: {_number(final_eval_loss)}

## Hyperparameters

| name | value |
|---|---|
{rows}

## Notes

{notes}
"""

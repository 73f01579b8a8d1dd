"""Read, tokenize and split the training and validation data."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from datasets import Dataset
from transformers import PreTrainedTokenizerBase

from core.dataset_formats import DatasetError, DatasetFormat, Example, read_examples
from trainer.config import Hyperparameters
from trainer.errors import InvalidTrainingData
from trainer.tokenize import tokenize_example

EventCallback = Callable[[str], None]


@dataclass(frozen=True)
class TrainingData:
    """Tokenized rows (``input_ids`` + ``assistant_masks``) and the examples they came from."""

    format: DatasetFormat
    train: Dataset
    train_examples: list[Example]
    eval: Dataset | None
    eval_examples: list[Example]

    @property
    def train_tokens(self) -> int:
        return sum(len(ids) for ids in self.train["input_ids"])


def read_file(path: Path) -> tuple[DatasetFormat, list[Example]]:
    try:
        fmt, examples, _ = read_examples(path)
    except DatasetError as exc:
        raise InvalidTrainingData(f"{path.name}: {exc}") from exc
    return fmt, examples


def tokenize_all(examples: list[Example], tokenizer: PreTrainedTokenizerBase, hp: Hyperparameters) -> Dataset:
    rows = [tokenize_example(tokenizer, example, hp.train_on_inputs) for example in examples]
    return Dataset.from_dict(
        {"input_ids": [r.input_ids for r in rows], "assistant_masks": [r.assistant_masks for r in rows]}
    )


def count_too_long(dataset: Dataset, max_seq_length: int) -> int:
    return sum(len(ids) > max_seq_length for ids in dataset["input_ids"])


def _held_out(examples: list[Example], share: float, seed: int) -> tuple[list[Example], list[Example]]:
    """A seeded random split; at least one example on each side."""
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    n_eval = min(len(examples) - 1, max(1, round(len(examples) * share)))
    held = set(order[:n_eval])
    train = [e for i, e in enumerate(examples) if i not in held]
    return train, [examples[i] for i in sorted(held)]


def load_training_data(
    train_file: Path,
    validation_file: Path | None,
    tokenizer: PreTrainedTokenizerBase,
    hp: Hyperparameters,
    on_event: EventCallback,
) -> TrainingData:
    """Tokenize the training file and the validation file, or a seeded hold-out split of the training file."""
    fmt, train_examples = read_file(train_file)
    eval_examples: list[Example] = []
    if validation_file is not None:
        _, eval_examples = read_file(validation_file)
        if hp.validation_split > 0:
            on_event(f"validation_split={hp.validation_split} ignored: a validation file was given")
    elif hp.validation_split > 0:
        train_examples, eval_examples = _held_out(train_examples, hp.validation_split, hp.seed)
        on_event(f"held out {len(eval_examples)} of {len(train_examples) + len(eval_examples)} examples for eval")
    train = tokenize_all(train_examples, tokenizer, hp)
    evaluation = tokenize_all(eval_examples, tokenizer, hp) if eval_examples else None
    for name, dataset in (("training", train), ("validation", evaluation)):
        too_long = count_too_long(dataset, hp.max_seq_length) if dataset is not None else 0
        if too_long:
            on_event(
                f"{too_long} {name} rows longer than max_seq_length={hp.max_seq_length} were truncated; "
                "raise max_seq_length to keep them whole"
            )
    return TrainingData(fmt, train, train_examples, evaluation, eval_examples)

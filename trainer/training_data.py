"""Read, tokenize, split and pack the training and validation data (cached by content when a cache dir is given)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from datasets import Dataset
from transformers import PreTrainedTokenizerBase

from core.dataset_formats import DatasetError, DatasetFormat, Example, read_examples
from trainer.auto_hyperparameters import DataSize, held_out_indices
from trainer.batches import prepare_rows
from trainer.config import Hyperparameters
from trainer.dataset_cache import PreparedRows, cache_key, load_prepared, store_prepared
from trainer.errors import InvalidTrainingData
from trainer.tokenize import tokenize_example

EventCallback = Callable[[str], None]


@dataclass(frozen=True)
class TrainingData:
    """Training rows (``input_ids`` + ``labels``, packed: + ``seq_lengths``) and the examples they came from."""

    format: DatasetFormat
    train: Dataset
    train_examples: list[Example]
    eval: Dataset | None
    eval_examples: list[Example]
    train_tokens: int  # tokens in the training rows, after truncation
    from_cache: bool = False

    @property
    def size(self) -> DataSize:
        longest = max((len(ids) for ids in self.train["input_ids"]), default=1)
        return DataSize(len(self.train_examples), len(self.train), self.train_tokens, longest)


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
    held = held_out_indices(len(examples), share, seed)
    train = [e for i, e in enumerate(examples) if i not in held]
    return train, [examples[i] for i in sorted(held)]


def _prepare(
    train_examples: list[Example], eval_examples: list[Example], tokenizer: PreTrainedTokenizerBase, hp: Hyperparameters
) -> PreparedRows:
    warnings: list[str] = []
    prepared: dict[str, Dataset] = {}
    for name, examples in (("training", train_examples), ("validation", eval_examples)):
        if not examples:
            continue
        tokenized = tokenize_all(examples, tokenizer, hp)
        too_long = count_too_long(tokenized, hp.max_seq_length)
        if too_long:
            warnings.append(
                f"{too_long} {name} rows longer than max_seq_length={hp.max_seq_length} were truncated; "
                "raise max_seq_length to keep them whole"
            )
        prepared[name] = prepare_rows(tokenized, hp.max_seq_length, hp.packing)
    train = prepared["training"]
    train_tokens = sum(len(ids) for ids in train["input_ids"])
    return PreparedRows(train, prepared.get("validation"), train_tokens, warnings)


def _row_settings(hp: Hyperparameters, validation_file: Path | None) -> dict[str, object]:
    """The settings that shape the rows (the split only matters when there is no validation file)."""
    split = {"validation_split": hp.validation_split, "seed": hp.seed} if validation_file is None else {}
    return {"max_seq_length": hp.max_seq_length, "packing": hp.packing, "train_on_inputs": hp.train_on_inputs, **split}


def load_training_data(
    train_file: Path,
    validation_file: Path | None,
    tokenizer: PreTrainedTokenizerBase,
    hp: Hyperparameters,
    on_event: EventCallback,
    cache_dir: Path | None = None,
) -> TrainingData:
    """Tokenize and pack the training file and the validation file, or a seeded hold-out split of the training file.

    With ``cache_dir``, prepared rows are looked up there by content and stored after a miss.
    """
    fmt, train_examples = read_file(train_file)
    eval_examples: list[Example] = []
    if validation_file is not None:
        _, eval_examples = read_file(validation_file)
        if hp.validation_split > 0:
            on_event(f"validation_split={hp.validation_split} ignored: a validation file was given")
    elif hp.validation_split > 0:
        train_examples, eval_examples = _held_out(train_examples, hp.validation_split, hp.seed)
        on_event(f"held out {len(eval_examples)} of {len(train_examples) + len(eval_examples)} examples for eval")
    entry = None
    if cache_dir is not None:
        entry = cache_dir / cache_key((train_file, validation_file), tokenizer, _row_settings(hp, validation_file))
    rows = load_prepared(entry) if entry is not None else None
    from_cache = rows is not None
    if entry is not None and rows is not None:
        on_event(f"tokenized data from cache {entry.name[:12]}")
    if rows is None:
        rows = _prepare(train_examples, eval_examples, tokenizer, hp)
        if entry is not None:
            entry.parent.mkdir(parents=True, exist_ok=True)
            store_prepared(entry, rows)
    for line in rows.warnings:
        on_event(line)
    return TrainingData(fmt, rows.train, train_examples, rows.eval, eval_examples, rows.train_tokens, from_cache)

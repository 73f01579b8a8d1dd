"""From tokenized examples to training rows, and from rows to micro-batches for the chosen attention kernel.

The trainer prepares the rows itself (labels, truncation, best-fit-decreasing packing with TRL's
``pack_dataset``) instead of leaving it to ``SFTTrainer``, for two reasons: the prepared rows can be cached
between jobs (``trainer.dataset_cache``), and the micro-batch layout depends on the attention kernel
(``trainer.attention``), which TRL's padding-free collator does not offer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from datasets import Dataset
from trl.data_utils import pack_dataset
from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

from trainer.attention import BatchLayout

IGNORE_INDEX = -100  # label of a token that is context only


def _labels(row: dict[str, list[int]]) -> dict[str, list[int]]:
    ids, mask = row["input_ids"], row["assistant_masks"]
    return {"labels": [token if keep else IGNORE_INDEX for token, keep in zip(ids, mask, strict=True)]}


def prepare_rows(tokenized: Dataset, max_seq_length: int, packing: bool) -> Dataset:
    """Rows of ``input_ids`` + ``labels`` (and ``seq_lengths`` per packed example), truncated to ``max_seq_length``."""
    rows = tokenized.map(_labels, remove_columns=["assistant_masks"])
    if packing:
        return pack_dataset(rows, max_seq_length, strategy="bfd")  # truncates each example to max_seq_length
    rows = rows.map(
        lambda row: {"input_ids": row["input_ids"][:max_seq_length], "labels": row["labels"][:max_seq_length]}
    )
    # As TRL does: an unpacked row whose labels were all cut off teaches nothing and only costs compute.
    return rows.filter(lambda row: any(label != IGNORE_INDEX for label in row["labels"]))


@dataclass
class PackedRowsCollator:
    """Keeps each packed row as a batch row; position ids restart at every example, so that transformers
    builds a block-diagonal causal mask per row. Shorter rows are filled with pad tokens that form an example
    of their own (position ids from 0, no labels), so no attention mask is needed."""

    pad_token_id: int

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        width = max(len(row["input_ids"]) for row in rows)
        input_ids = torch.full((len(rows), width), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
        position_ids = torch.zeros((len(rows), width), dtype=torch.long)
        for index, row in enumerate(rows):
            start = 0
            for length in [*row["seq_lengths"], width - len(row["input_ids"])]:
                position_ids[index, start : start + length] = torch.arange(length)
                start += length
            length = len(row["input_ids"])
            input_ids[index, :length] = torch.tensor(row["input_ids"])
            labels[index, :length] = torch.tensor(row["labels"])
        # The first token of an example is not predicted from the end of the one packed before it.
        labels[position_ids == 0] = IGNORE_INDEX
        return {"input_ids": input_ids, "labels": labels, "position_ids": position_ids}


Collator = Callable[[list[dict[str, Any]]], dict[str, Any]]


def collator_for(layout: BatchLayout, packing: bool, pad_token_id: int) -> Collator:
    """The micro-batch builder: flat for varlen kernels, packed rows for dense ones, padded when not packing."""
    if not packing:
        return DataCollatorForLanguageModeling(pad_token_id=pad_token_id, padding_free=False)
    if layout is BatchLayout.FLAT:
        return DataCollatorForLanguageModeling(pad_token_id=pad_token_id, padding_free=True)
    return PackedRowsCollator(pad_token_id)

"""Reading training data: rows too long for max_seq_length are reported, and hold-out splits are seeded."""

from __future__ import annotations

from pathlib import Path

from transformers import AutoTokenizer

from trainer.config import Hyperparameters
from trainer.training_data import load_training_data


def test_rows_longer_than_max_seq_length_are_reported_as_truncated(tiny_model: Path, sample_dataset: Path) -> None:
    events: list[str] = []
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    load_training_data(sample_dataset, None, tokenizer, Hyperparameters(max_seq_length=16), events.append)
    assert events == [
        "72 training rows longer than max_seq_length=16 were truncated; raise max_seq_length to keep them whole"
    ]


def test_hold_out_split_is_the_same_for_the_same_seed(tiny_model: Path, sample_dataset: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)

    def held_out(seed: int) -> list[object]:
        hp = Hyperparameters(validation_split=0.2, seed=seed)
        return list(load_training_data(sample_dataset, None, tokenizer, hp, lambda _: None).eval_examples)

    assert held_out(1) == held_out(1) != held_out(2)
    assert len(held_out(1)) == 14

"""Prepared rows are cached by content: a second job on the same data skips tokenizing and trains identically."""

from __future__ import annotations

from pathlib import Path

from transformers import AutoTokenizer

from trainer.config import Hyperparameters, Quantization, RunSpec
from trainer.results import Progress
from trainer.train import train
from trainer.training_data import load_training_data

HP = Hyperparameters(n_epochs=1, learning_rate=3e-3, batch_size=4, max_seq_length=128, quantization=Quantization.NONE)


def _losses(progress: list[Progress]) -> list[float | None]:
    return [p.loss for p in progress]


def test_second_run_on_the_same_data_hits_the_cache_and_trains_identically(
    tiny_model: Path, sample_dataset: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    runs: list[tuple[list[str], list[Progress]]] = []
    for name in ("first", "second"):
        events: list[str] = []
        progress: list[Progress] = []
        spec = RunSpec(tiny_model, sample_dataset, tmp_path / name, HP, tokenized_cache_dir=cache, sample_generations=0)
        train(spec, on_progress=progress.append, on_event=events.append)
        runs.append((events, progress))
    (first_events, first_progress), (second_events, second_progress) = runs
    assert not any(line.startswith("tokenized data from cache") for line in first_events)
    assert any(line.startswith("tokenized data from cache") for line in second_events)
    assert len(list(cache.iterdir())) == 1
    assert _losses(second_progress) == _losses(first_progress)


def test_other_settings_or_another_file_miss_the_cache(tiny_model: Path, sample_dataset: Path, tmp_path: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    cache = tmp_path / "cache"
    edited = tmp_path / "edited.jsonl"
    edited.write_bytes(sample_dataset.read_bytes() + b"\n")  # same examples, other bytes
    loads = [
        (sample_dataset, Hyperparameters(max_seq_length=128)),
        (sample_dataset, Hyperparameters(max_seq_length=128)),
        (sample_dataset, Hyperparameters(max_seq_length=64)),
        (sample_dataset, Hyperparameters(max_seq_length=128, train_on_inputs=True)),
        (edited, Hyperparameters(max_seq_length=128)),
    ]
    hits = [load_training_data(path, None, tokenizer, hp, lambda _: None, cache).from_cache for path, hp in loads]
    assert hits == [False, True, False, False, False]
    assert len(list(cache.iterdir())) == 4


def test_truncation_warnings_are_repeated_on_a_cache_hit(
    tiny_model: Path, sample_dataset: Path, tmp_path: Path
) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    hp = Hyperparameters(max_seq_length=16)
    seen: list[list[str]] = [[], []]
    for events in seen:
        load_training_data(sample_dataset, None, tokenizer, hp, events.append, tmp_path)
    assert [line for line in seen[1] if not line.startswith("tokenized data from cache")] == seen[0]
    assert seen[0] and "truncated" in seen[0][0]

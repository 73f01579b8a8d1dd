"""A sweep submits one dataset many times: its token lengths are parsed and packed once per process."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

from core import model_files
from core.db import transaction
from core.estimates import Estimate, EstimateInput, _data_size, estimate
from core.settings import Settings
from core.token_counts import TokenizerFiles, _stored_lengths, tokenizer_files


def _estimate(settings: Settings, job: EstimateInput) -> Estimate:
    with transaction(settings.resolved_database_url) as session:
        return estimate(session, settings, job)


def test_a_repeated_estimate_of_one_dataset_parses_its_lengths_once_and_packs_them_once(
    settings: Settings, tiny_model: Path, sample_dataset: Path
) -> None:
    hyperparameters = {"n_epochs": 2, "batch_size": 4, "max_seq_length": 96, "packing": True}
    job = EstimateInput(str(tiny_model), sample_dataset, None, hyperparameters, has_validation_file=False, gpus=1)
    counted = _estimate(settings, job)  # tokenizes, and writes the cache entry
    assert not counted.tokens.from_cache
    parses, packings = _stored_lengths.cache_info().misses, _data_size.cache_info().misses
    sweep = [replace(job, hyperparameters={**hyperparameters, "learning_rate": rate}) for rate in (1e-4, 3e-4, 1e-3)]
    estimates = [_estimate(settings, each) for each in sweep]
    assert all(each.tokens == estimates[0].tokens and each.tokens.from_cache for each in estimates)
    assert all(each.total_steps == counted.total_steps for each in estimates)
    assert _stored_lengths.cache_info().misses == parses + 1  # the entry parsed by the first of the sweep only
    assert _data_size.cache_info().misses == packings  # packed when first counted, not since


def test_a_models_config_is_parsed_once_per_version_and_a_model_replaced_in_place_is_read_anew(
    settings: Settings, tiny_model: Path, sample_dataset: Path, tmp_path: Path
) -> None:
    model = tmp_path / "models" / "replaced"
    shutil.copytree(tiny_model, model)
    job = EstimateInput(str(model), sample_dataset, None, {"n_epochs": 1}, has_validation_file=False, gpus=1)
    before = _estimate(settings, job).throughput.model_parameters
    parses = model_files._json.cache_info().misses
    assert _estimate(settings, job).throughput.model_parameters == before
    assert model_files._json.cache_info().misses == parses  # config.json and tokenizer_config.json: cached

    config = json.loads((model / "config.json").read_text())
    config["num_hidden_layers"] *= 2
    (model / "config.json").write_text(json.dumps(config))  # a new size, and so a new version
    assert _estimate(settings, job).throughput.model_parameters > before
    assert model_files._json.cache_info().misses == parses + 1


def test_a_missing_model_file_or_a_directory_reads_as_none(tmp_path: Path) -> None:
    assert model_files.read_json(tmp_path / "config.json") is None
    assert model_files.read_text(tmp_path) is None


def test_a_tokenizer_replaced_in_place_gets_a_new_identity(tiny_model: Path, tmp_path: Path) -> None:
    """Token counts are cached under the tokenizer's identity; a tokenizer.json rewritten at the same path
    must not find the counts of the one before (the digest was once cached by path alone)."""
    model = tmp_path / "models" / "retokenized"
    shutil.copytree(tiny_model, model)
    files = tokenizer_files(str(model))
    assert isinstance(files, TokenizerFiles)
    before = files.identity
    assert files.identity == before  # the same file, the same identity
    tokenizer = json.loads((model / "tokenizer.json").read_text())
    tokenizer["added_tokens"].append({**tokenizer["added_tokens"][-1], "id": 10_000, "content": "<|new|>"})
    (model / "tokenizer.json").write_text(json.dumps(tokenizer))
    assert files.identity != before

"""A sweep submits one dataset many times: its token lengths are parsed and packed once per process."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from core.db import transaction
from core.estimates import Estimate, EstimateInput, _data_size, estimate
from core.settings import Settings
from core.token_counts import _stored_lengths


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

"""Cost before you pay: POST /finetune/estimate, /v1 dry_run, and the estimate every job keeps."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from sqlalchemy import select

from core.db import transaction
from core.models import Worker
from core.settings import Settings
from tests.conftest import FAST_HYPERPARAMETERS, count_rows, queue_length, wait_for_terminal
from tuneq.processes import Service


def trainer_rows(tiny_model: Path, dataset: Path, **hyperparameters: Any) -> tuple[int, int, int]:
    """(examples, tokens, rows) as the trainer itself prepares the data: its tokenizer, tokenization and packing."""
    from trainer.config import Hyperparameters
    from trainer.model_loading import load_tokenizer
    from trainer.training_data import load_training_data

    tokenizer = load_tokenizer(str(tiny_model), trust_remote_code=False)
    data = load_training_data(dataset, None, tokenizer, Hyperparameters(**hyperparameters), lambda _: None)
    return len(data.train_examples), data.train_tokens, len(data.train)


def test_estimate_counts_tokens_as_the_trainer_does_and_resolves_auto(
    settings: Settings,
    client: httpx.Client,
    redis_client: redis.Redis,
    tiny_model: Path,
    sample_dataset: Path,
    uploaded_file: dict[str, Any],
) -> None:
    body = {
        "base_model": str(tiny_model),
        "training_file": uploaded_file["id"],
        "hyperparameters": {"max_seq_length": 64},
    }
    response = client.post("/finetune/estimate", json=body)
    assert response.status_code == 200, response.text
    estimate = response.json()

    examples, tokens, rows = trainer_rows(tiny_model, sample_dataset, max_seq_length=64)
    assert estimate["object"] == "fine_tune.estimate"
    assert estimate["tokens"]["counted_with"] == "tokenizer" and not estimate["tokens"]["from_cache"]
    assert (estimate["tokens"]["examples"], estimate["tokens"]["training_tokens"], estimate["tokens"]["rows"]) == (
        examples,
        tokens,
        rows,
    )
    resolved = estimate["hyperparameters"]
    assert "auto" not in (resolved["n_epochs"], resolved["batch_size"], resolved["gradient_accumulation_steps"])
    assert resolved["learning_rate"] == 2e-4  # QLoRA's auto rate
    assert any(line.startswith("auto: batch_size") for line in estimate["decisions"])
    # No worker is live here: the estimate says it assumed the configured GPU, and prices that GPU.
    assert estimate["device"]["device"] == "cuda" and estimate["device"]["name"] == settings.estimate_gpu_name
    assert "no live worker" in estimate["device"]["assumed_from"]
    assert estimate["price_per_hour"] == settings.gpu_prices_per_hour["H100"]
    assert estimate["trained_tokens"] == tokens * resolved["n_epochs"]
    assert estimate["throughput"]["size_class"] == "tiny" and estimate["throughput"]["source"] == "placeholder"
    assert estimate["total_steps"] > 0 and estimate["seconds"] > 0 and estimate["cost_usd"] > 0
    assert any("placeholder" in note for note in estimate["notes"])

    again = client.post("/finetune/estimate", json=body).json()
    assert again["tokens"]["from_cache"] and again["tokens"]["training_tokens"] == tokens
    # Truncation is applied to the cached per-example counts, so another max_seq_length reuses them.
    longer = client.post("/finetune/estimate", json={**body, "hyperparameters": {"max_seq_length": 1024}}).json()
    assert longer["tokens"]["from_cache"] and longer["tokens"]["truncated_examples"] == 0
    assert count_rows(settings.resolved_database_url, "jobs") == 0 and queue_length(redis_client, settings) == 0


def test_v1_dry_run_answers_an_estimate_and_creates_no_job_or_queue_message(
    settings: Settings, client: httpx.Client, redis_client: redis.Redis, tiny_model: Path, uploaded_file: dict[str, Any]
) -> None:
    body = {
        "model": str(tiny_model),
        "training_file": uploaded_file["id"],
        "method": {"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 2}}},
        "tuneq": {"max_seq_length": 128},
    }
    response = client.post("/v1/fine_tuning/jobs", params={"dry_run": "true"}, json=body)
    assert response.status_code == 200, response.text
    estimate = response.json()
    assert estimate["object"] == "fine_tune.estimate" and estimate["hyperparameters"]["n_epochs"] == 2
    assert estimate["hyperparameters"]["max_seq_length"] == 128
    assert count_rows(settings.resolved_database_url, "jobs") == 0 and queue_length(redis_client, settings) == 0

    bad = client.post("/v1/fine_tuning/jobs", params={"dry_run": "true"}, json={**body, "training_file": "file-nope"})
    assert bad.status_code == 404 and bad.json()["error"]["param"] == "training_file"


def test_estimate_of_bad_input_is_a_4xx_with_the_error_envelope(
    client: httpx.Client, tiny_model: Path, uploaded_file: dict[str, Any], tmp_path: Path
) -> None:
    good = {"base_model": str(tiny_model), "training_file": uploaded_file["id"]}
    cases = [
        ({**good, "training_file": "file-nope"}, 404, "training_file"),
        ({**good, "base_model": str(tmp_path)}, 400, "base_model"),
        ({**good, "hyperparameters": {"lora_r": 0}}, 422, "hyperparameters.lora_r"),
        ({**good, "hyperparameters": {"batch_size": 1024, "max_seq_length": 4096}}, 400, "hyperparameters.batch_size"),
        ({"training_file": uploaded_file["id"]}, 422, "base_model"),
    ]
    for body, status, param in cases:
        response = client.post("/finetune/estimate", json=body)
        assert response.status_code == status, response.text
        error = response.json()["error"]
        assert error["param"] == param and error["message"], error
        assert error["type"] == ("not_found_error" if status == 404 else "invalid_request_error")


def test_hub_model_whose_tokenizer_is_not_cached_is_estimated_by_bytes_over_4(
    client: httpx.Client, sample_dataset: Path, uploaded_file: dict[str, Any]
) -> None:
    # HF_HUB_OFFLINE=1 (the settings fixture): nothing is in the cache for this id, and nothing is fetched.
    body = {"base_model": "tuneq-tests/Tiny-0.5B", "training_file": uploaded_file["id"]}
    estimate = client.post("/finetune/estimate", json=body).json()
    assert estimate["tokens"]["counted_with"] == "bytes/4 heuristic"
    assert "not in the local Hugging Face cache" in estimate["tokens"]["tokenizer"]
    assert any("bytes / 4" in note for note in estimate["notes"])
    assert estimate["throughput"]["model_parameters"] == 500_000_000  # read from the name
    assert estimate["throughput"]["size_class"] == "small"


def test_a_submitted_job_carries_its_estimate_in_both_views(
    client: httpx.Client, tiny_model: Path, uploaded_file: dict[str, Any]
) -> None:
    body = {
        "base_model": str(tiny_model),
        "training_file": uploaded_file["id"],
        "hyperparameters": FAST_HYPERPARAMETERS,
    }
    estimate = client.post("/finetune/estimate", json=body).json()
    job = client.post("/finetune", json=body).json()
    assert job["estimate"]["total_steps"] == estimate["total_steps"] == job["progress"]["estimated_total_steps"]
    assert job["cost"]["estimated_cost_usd"] == job["estimate"]["cost_usd"] == estimate["cost_usd"]
    assert job["cost"]["estimated_seconds"] == estimate["seconds"]
    assert job["estimate"]["tokens"]["from_cache"]  # the estimate above counted this file already
    v1 = client.get(f"/v1/fine_tuning/jobs/{job['id']}").json()
    assert v1["tuneq"]["estimate"] == job["estimate"]
    assert v1["estimated_finish"] >= v1["created_at"]  # queued: now + the estimated seconds


def _live_worker(settings: Settings) -> bool:
    with transaction(settings.resolved_database_url) as session:
        return session.scalars(select(Worker.id).where(Worker.status == "idle")).first() is not None


@pytest.mark.slow
def test_after_a_real_run_the_view_shows_estimated_beside_actual_steps_and_cost(
    settings: Settings, client: httpx.Client, worker: Service, tiny_model: Path, uploaded_file: dict[str, Any]
) -> None:
    # The estimate assumes a live worker's device: wait until the CPU worker has registered.
    deadline = time.monotonic() + 120
    while not _live_worker(settings):
        assert time.monotonic() < deadline and worker.process.poll() is None, worker.log_tail()
        time.sleep(0.1)
    body = {
        "base_model": str(tiny_model),
        "training_file": uploaded_file["id"],
        "hyperparameters": FAST_HYPERPARAMETERS,
    }
    job = client.post("/finetune", json=body).json()
    assert job["estimate"]["device"]["device"] == "cpu", job["estimate"]["device"]
    assert job["estimate"]["throughput"]["source"] == "measured"
    done = wait_for_terminal(client, job["id"], worker)
    assert done["status"] == "succeeded", done["error"]

    assert done["progress"]["estimated_total_steps"] == done["progress"]["total_steps"]  # same rules, same data
    assert done["trained_tokens"] == done["estimate"]["trained_tokens"]
    cost, estimated = done["cost"], done["estimate"]
    assert cost["cost_usd"] > 0 and cost["estimated_cost_usd"] > 0
    print(
        f"tiny model on this CPU: steps estimated {estimated['total_steps']} actual {done['progress']['total_steps']}; "
        f"seconds estimated {cost['estimated_seconds']} actual {cost['gpu_seconds']:.1f}; "
        f"cost estimated ${cost['estimated_cost_usd']:.6f} actual ${cost['cost_usd']:.6f}; "
        f"tokens estimated {estimated['trained_tokens']} actual {done['trained_tokens']}"
    )

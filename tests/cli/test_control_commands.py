"""`tuneq pause|resume|download|estimate`, run as a user runs them: subprocesses against a real API (and worker)."""

from __future__ import annotations

import tarfile
from pathlib import Path

import httpx
import pytest
import redis

from core.settings import Settings
from tests.cli.test_client_commands import json_of, tuneq
from tests.conftest import FAST_HYPERPARAMETERS, queue_length, submit_in_database, wait_for_terminal
from tuneq.processes import Service


def test_cli_pauses_resumes_and_cancels_a_queued_job(
    settings: Settings, cli_env: dict[str, str], redis_client: redis.Redis, tiny_model: Path, sample_dataset: Path
) -> None:
    job_id = submit_in_database(settings, "acme", tiny_model, sample_dataset)
    assert queue_length(redis_client, settings) == 1

    assert json_of(tuneq("pause", job_id, "--json", env=cli_env, timeout=60))["status"] == "paused"
    assert queue_length(redis_client, settings) == 0  # a paused job holds no queue message
    done = tuneq("resume", job_id, env=cli_env, timeout=60)
    assert done.returncode == 0 and f"{job_id} queued" in done.stdout, done.stderr
    assert queue_length(redis_client, settings) == 1

    again = tuneq("resume", job_id, env=cli_env, timeout=60)  # only a paused job can be resumed
    assert again.returncode == 1 and "only paused jobs can be resumed" in again.stderr

    cancelled = tuneq("cancel", job_id, env=cli_env, timeout=60)
    assert cancelled.returncode == 0 and f"{job_id} cancelled" in cancelled.stdout, cancelled.stderr
    assert queue_length(redis_client, settings) == 0
    twice = tuneq("cancel", job_id, "--json", env=cli_env, timeout=60)  # a finished job cannot be cancelled
    assert twice.returncode == 1 and "already cancelled" in twice.stderr


def test_cli_estimate_uploads_a_local_file_and_prints_tokens_steps_time_and_cost(
    cli_env: dict[str, str], tiny_model: Path, sample_dataset: Path
) -> None:
    flags = ["--model", str(tiny_model), "--training-file", str(sample_dataset), "--n-epochs", "2"]
    estimate = json_of(tuneq("estimate", *flags, "--max-seq-length", "128", "--json", env=cli_env, timeout=120))
    assert estimate["object"] == "fine_tune.estimate" and estimate["hyperparameters"]["n_epochs"] == 2
    assert estimate["tokens"]["counted_with"] == "tokenizer" and estimate["total_steps"] > 0

    shown = tuneq("estimate", *flags, env=cli_env, timeout=120)
    assert shown.returncode == 0, shown.stderr
    for line in ("tokens  ", "steps   ", "time    ", "cost    $"):
        assert line in shown.stdout, shown.stdout
    listed = json_of(tuneq("list", "--json", env=cli_env, timeout=60))
    assert listed["data"] == []  # an estimate submits nothing


@pytest.mark.slow
def test_cli_downloads_verified_adapter_merged_and_checkpoint_archives_and_refuses_a_bad_checksum(
    settings: Settings,
    cli_env: dict[str, str],
    client: httpx.Client,
    worker: Service,
    tiny_model: Path,
    uploaded_file: dict[str, object],
    tmp_path: Path,
) -> None:
    body = {
        "base_model": str(tiny_model),
        "training_file": uploaded_file["id"],
        "hyperparameters": {**FAST_HYPERPARAMETERS, "merge_adapter": True},
    }
    job = wait_for_terminal(client, client.post("/finetune", json=body).json()["id"], worker)
    assert job["status"] == "succeeded", job["error"]

    adapter = tmp_path / "adapter.tar"
    saved = json_of(tuneq("download", job["id"], "--output", str(adapter), "--json", env=cli_env, timeout=120))
    assert saved["verified"] and saved["path"] == str(adapter) and saved["bytes"] == adapter.stat().st_size
    with tarfile.open(adapter) as tar:
        assert "adapter/adapter_model.safetensors" in tar.getnames()

    kept = [c for c in client.get(f"/finetune/{job['id']}/checkpoints").json()["data"] if c["deleted_at"] is None]
    checkpoint = tmp_path / "checkpoint.tar"
    args = ("download", job["id"], "--checkpoint", kept[0]["id"], "-o", str(checkpoint), "--json")
    assert json_of(tuneq(*args, env=cli_env, timeout=120))["verified"]

    merged = tmp_path / "merged.tar"
    args = ("download", job["id"], "--merged", "-o", str(merged), "--json")
    assert json_of(tuneq(*args, env=cli_env, timeout=120))["verified"]
    with tarfile.open(merged) as tar:
        names = tar.getnames()
    assert "merged/config.json" in names and any(name.endswith(".safetensors") for name in names), names

    # Damage the server's cached archive after its checksum was recorded: the bytes no longer match the header.
    cached = settings.jobs_dir / job["id"] / "archives" / "adapter.tar"
    with cached.open("r+b") as handle:
        handle.seek(1000)
        handle.write(b"corrupted")
    again = tmp_path / "again.tar"
    refused = tuneq("download", job["id"], "--output", str(again), env=cli_env, timeout=120)
    assert refused.returncode == 1 and "checksum mismatch" in refused.stderr, refused.stderr
    assert not again.exists() and not list(tmp_path.glob("*.partial"))

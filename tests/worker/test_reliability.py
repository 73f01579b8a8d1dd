"""Jobs are never lost: real worker processes killed, stopped, cancelled; Redis emptied."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from core.settings import Settings
from tests.conftest import FAST_HYPERPARAMETERS, ONE_AT_A_TIME, wait_for_job, wait_for_terminal
from tuneq.processes import Service, start_worker

# Long enough (hundreds of steps) to be interrupted mid-training.
LONG = {**FAST_HYPERPARAMETERS, "n_epochs": 40, "gradient_accumulation_steps": 1}
CHECKPOINT_EVERY = 50  # trainer.config.DEFAULT_CHECKPOINT_EVERY_STEPS
# 120 steps: interrupted past the first checkpoint with 65 steps to spare, and the rest trained again in seconds
# (at LONG's 240 the rerun took most of a 106 s test).
PAST_A_CHECKPOINT = {**LONG, "n_epochs": 20}

pytestmark = pytest.mark.slow


def _submit(
    client: httpx.Client, tiny_model: Path, file_id: str, hyperparameters: dict[str, Any] = LONG, **extra: Any
) -> str:
    body = {"base_model": str(tiny_model), "training_file": file_id, "hyperparameters": hyperparameters, **extra}
    response = client.post("/finetune", json=body)
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def _wait_until_training(client: httpx.Client, job_id: str, worker: Service, min_step: int = 5) -> dict[str, Any]:
    return wait_for_job(
        client, job_id, worker, lambda j: j["status"] == "running" and j["progress"]["step"] >= min_step, 600
    )  # an outer bound only: on a loaded machine 55 steps of the tiny model can take minutes


def _events(client: httpx.Client, job_id: str) -> list[str]:
    return [e["message"] for e in client.get(f"/finetune/{job_id}/events").json()["data"]]


def _steps_by_attempt(client: httpx.Client, job_id: str) -> dict[int, list[int]]:
    by_attempt: dict[int, list[int]] = {}
    for row in client.get(f"/finetune/{job_id}/metrics").json()["data"]:
        if row["loss"] is not None:
            by_attempt.setdefault(row["attempt"], []).append(row["step"])
    return by_attempt


def _resumed_from(client: httpx.Client, job_id: str) -> int:
    resumed = [m for m in _events(client, job_id) if m.startswith("resuming from checkpoint-")]
    assert len(resumed) == 1, _events(client, job_id)
    return int(resumed[0].rsplit("-", 1)[1])


def test_killed_worker_job_is_requeued_and_resumed_from_its_checkpoint_by_another_worker(
    client: httpx.Client, settings: Settings, tmp_path: Path, tiny_model: Path, uploaded_file: dict[str, Any]
) -> None:
    first = start_worker(tmp_path / "logs", name="first")
    try:
        job_id = _submit(client, tiny_model, str(uploaded_file["id"]), PAST_A_CHECKPOINT)
        _wait_until_training(client, job_id, first, min_step=CHECKPOINT_EVERY + 5)
        first.kill_hard()
    finally:
        first.stop()
    second = start_worker(tmp_path / "logs", name="second")
    try:
        job = wait_for_terminal(client, job_id, second)
    finally:
        second.stop()
    assert job["status"] == "succeeded", job["error"]
    assert job["attempt"] == 2
    assert any("stopped beating; requeued" in message for message in _events(client, job_id))
    steps = _steps_by_attempt(client, job_id)
    checkpoint = _resumed_from(client, job_id)
    assert checkpoint >= CHECKPOINT_EVERY
    # Only the steps after the last checkpoint are trained again, and nothing before it.
    assert max(steps[1]) - checkpoint <= CHECKPOINT_EVERY
    assert steps[2][0] == checkpoint + 1 and steps[2][-1] == job["progress"]["total_steps"]


def test_sigterm_requeues_the_job_and_the_worker_exits_promptly(
    client: httpx.Client, settings: Settings, tmp_path: Path, tiny_model: Path, uploaded_file: dict[str, Any]
) -> None:
    first = start_worker(tmp_path / "logs", name="first")
    job_id = _submit(client, tiny_model, str(uploaded_file["id"]), PAST_A_CHECKPOINT)
    _wait_until_training(client, job_id, first)
    first.process.send_signal(signal.SIGTERM)
    first.process.wait(timeout=600)  # an outer bound only: promptness is shown by the job being unfinished
    job = client.get(f"/finetune/{job_id}").json()
    assert job["status"] == "queued", job
    assert job["progress"]["step"] < job["progress"]["total_steps"], job  # it stopped mid-run, not at the end
    assert job["attempt"] == 0  # a graceful stop does not use up an attempt
    stopped_at = job["progress"]["step"]
    assert f"worker shutting down; requeued (checkpoint-{stopped_at})" in _events(client, job_id)

    second = start_worker(tmp_path / "logs", name="second")
    try:
        assert wait_for_terminal(client, job_id, second)["status"] == "succeeded"
    finally:
        second.stop()
    assert _resumed_from(client, job_id) == stopped_at
    rows = client.get(f"/finetune/{job_id}/metrics").json()["data"]
    trained = [row["step"] for row in rows if row["loss"] is not None]
    assert trained == list(range(1, trained[-1] + 1))  # not one step trained twice, none skipped


@ONE_AT_A_TIME
def test_cancel_running_job_stops_training_within_seconds_and_frees_the_worker(
    client: httpx.Client, worker: Service, tiny_model: Path, uploaded_file: dict[str, Any]
) -> None:
    job_id = _submit(client, tiny_model, str(uploaded_file["id"]))
    running = _wait_until_training(client, job_id, worker)
    asked = time.monotonic()
    response = client.post(f"/finetune/{job_id}/cancel")
    assert response.status_code == 200 and response.json()["cancel_requested_at"]
    job = wait_for_terminal(client, job_id, worker, timeout=30)
    assert job["status"] == "cancelled"
    assert time.monotonic() - asked < 10
    assert job["progress"]["step"] < job["progress"]["total_steps"]
    assert job["cost"]["gpu_seconds"] > 0 and job["cost"]["cost_usd"] > 0
    assert running["progress"]["step"] <= job["progress"]["step"]

    again = client.post(f"/finetune/{job_id}/cancel")
    assert again.status_code == 409
    assert "already cancelled" in again.json()["error"]["message"]

    short = {**FAST_HYPERPARAMETERS, "n_epochs": 1}
    next_id = _submit(client, tiny_model, str(uploaded_file["id"]), hyperparameters=short)
    assert wait_for_terminal(client, next_id, worker, timeout=600)["status"] == "succeeded"


def test_cancel_queued_job_removes_it_from_the_queue(
    client: httpx.Client, settings: Settings, redis_client: redis.Redis, tiny_model: Path, uploaded_file: dict[str, Any]
) -> None:
    from tests.conftest import queue_length

    job_id = _submit(client, tiny_model, str(uploaded_file["id"]))
    assert queue_length(redis_client, settings) == 1
    job = client.post(f"/finetune/{job_id}/cancel").json()
    assert job["status"] == "cancelled" and job["finished_at"]
    assert queue_length(redis_client, settings) == 0
    assert client.post("/finetune/ftjob-unknown/cancel").status_code == 404


def test_job_over_its_time_limit_fails_with_timeout(
    client: httpx.Client, worker: Service, tiny_model: Path, uploaded_file: dict[str, Any]
) -> None:
    job_id = _submit(client, tiny_model, str(uploaded_file["id"]), max_run_seconds=3)
    job = wait_for_terminal(client, job_id, worker, timeout=600)
    assert job["status"] == "failed"
    assert job["error"]["code"] == "timeout"


def test_queued_jobs_survive_redis_losing_everything(
    client: httpx.Client,
    settings: Settings,
    redis_client: redis.Redis,
    tmp_path: Path,
    tiny_model: Path,
    uploaded_file: dict[str, Any],
) -> None:
    short = {**FAST_HYPERPARAMETERS, "n_epochs": 1}
    ids = [_submit(client, tiny_model, str(uploaded_file["id"]), hyperparameters=short) for _ in range(3)]
    redis_client.flushdb()  # the test's Redis database: FLUSHALL's effect, without touching other users
    worker = start_worker(tmp_path / "logs")
    try:
        finished = [wait_for_terminal(client, job_id, worker, timeout=600) for job_id in ids]
    finally:
        worker.stop()
    assert [job["status"] for job in finished] == ["succeeded"] * 3

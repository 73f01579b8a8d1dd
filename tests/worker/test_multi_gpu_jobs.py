"""A job on two GPUs and a job on one share a three-GPU host, end to end.

No GPU here: ``tuneq workers --gpus 0,1,2`` runs three real workers pinned to
virtual GPU indices (CUDA finds none of them), so the two-GPU job's trainer
runs two gloo processes on the CPU. Everything else is real: the API, the
queue, the claims and reservations in PostgreSQL, the training.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from core.cost import cost_usd
from core.db import transaction
from core.models import Worker
from core.settings import Settings
from tests.conftest import count_rows, wait_for_terminal, wait_until
from tuneq.processes import start_tuneq

CHEAP = {"n_epochs": 1, "batch_size": 2, "max_seq_length": 64, "learning_rate": 3e-3}


def _live_workers(settings: Settings) -> int:
    with transaction(settings.resolved_database_url) as session:
        return len(session.scalars(select(Worker.id).where(Worker.status == "idle")).all())


def _events(client: httpx.Client, job_id: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = client.get(f"/finetune/{job_id}/events").json()["data"]
    return events


def _gpus(events: list[dict[str, Any]]) -> list[int]:
    (placed,) = [e["data"]["gpus"] for e in events if e["message"].startswith("running on GPU")]
    return list(placed)


def _charge(events: list[dict[str, Any]]) -> dict[str, Any]:
    (charged,) = [e["data"] for e in events if e["message"].startswith("charged ")]
    return dict(charged)


def _interval(job: dict[str, Any]) -> tuple[datetime, datetime]:
    return datetime.fromisoformat(job["started_at"]), datetime.fromisoformat(job["finished_at"])


@pytest.mark.slow
def test_a_two_gpu_job_trains_on_two_processes_while_a_one_gpu_job_runs_on_the_third_gpu(
    settings: Settings, client: httpx.Client, uploaded_file: dict[str, Any], tiny_model: Path, tmp_path: Path
) -> None:
    fleet = start_tuneq("fleet", ["workers", "--gpus", "0,1,2"], tmp_path / "logs")
    try:
        wait_until(lambda: _live_workers(settings) == 3, what="three workers registered")
        body = {"base_model": str(tiny_model), "training_file": uploaded_file["id"], "hyperparameters": CHEAP}
        big = client.post("/finetune", json={**body, "gpus": 2}).json()
        small = client.post("/finetune", json=body).json()
        big = wait_for_terminal(client, big["id"], None)
        small = wait_for_terminal(client, small["id"], None)
        wait_until(lambda: count_rows(settings.resolved_database_url, "gpu_reservations") == 0, what="GPUs freed")
    finally:
        assert fleet.stop(timeout=60) == 0, fleet.log_tail()

    assert (big["status"], small["status"]) == ("succeeded", "succeeded"), (big, small, fleet.log_tail())
    assert (big["gpus"], small["gpus"]) == (2, 1)
    big_events, small_events = _events(client, big["id"]), _events(client, small["id"])
    messages = [e["message"] for e in big_events]
    assert "data-parallel: 2 processes over gloo" in messages  # the trainer's rank 0, once every rank joined
    assert not any(e["message"].startswith("data-parallel") for e in small_events)

    # Both ran at once, on three different GPUs of the host: the small one did not wait for the big one.
    assert sorted(_gpus(big_events) + _gpus(small_events)) == [0, 1, 2]
    (big_start, big_end), (small_start, small_end) = _interval(big), _interval(small)
    assert small_start < big_end and big_start < small_end

    # Two GPUs are paid for: twice the GPU-seconds of the attempt's wall time, at the device's price.
    charged = _charge(big_events)
    assert charged["gpus"] == 2 and charged["gpu_seconds"] == pytest.approx(2 * charged["seconds"])
    assert big["cost"]["gpu_seconds"] == pytest.approx(charged["gpu_seconds"])
    assert big["cost"]["cost_usd"] == pytest.approx(cost_usd(settings, "cpu", "cpu", charged["gpu_seconds"]), abs=1e-6)
    assert _charge(small_events)["gpus"] == 1

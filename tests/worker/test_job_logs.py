"""Logs are structured: with TUNEQ_LOG_FORMAT=json every line is JSON, and every line about a job names it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from core.settings import Settings
from tests.conftest import FAST_HYPERPARAMETERS, TENANT, wait_for_terminal
from tuneq.processes import start_worker


def _json_lines(text: str) -> list[dict[str, Any]]:
    # Progress bars and third-party prints share the stream; the log records are the JSON objects.
    records = []
    for line in text.splitlines():
        if line.startswith("{"):
            records.append(json.loads(line))
    return records


def test_json_logs_name_the_job_tenant_and_worker_on_every_line_about_the_job(
    settings: Settings, client: httpx.Client, tiny_model: Path, uploaded_file: dict[str, Any], tmp_path: Path
) -> None:
    worker = start_worker(tmp_path / "logs", gpu=0, env={"TUNEQ_LOG_FORMAT": "json"})
    try:
        body = {
            "base_model": str(tiny_model),
            "training_file": uploaded_file["id"],
            "hyperparameters": {**FAST_HYPERPARAMETERS, "n_epochs": 1},
        }
        job_id = client.post("/finetune", json=body).json()["id"]
        assert wait_for_terminal(client, job_id, worker)["status"] == "succeeded"
    finally:
        worker.stop()

    records = _json_lines(worker.log_path.read_text())
    about_job = [r for r in records if r["job_id"] == job_id]
    assert about_job, worker.log_tail()
    for record in about_job:
        assert record["tenant"] == TENANT
        assert record["worker"].endswith(".gpu0")
        assert {"timestamp", "level", "name", "message"} <= record.keys()
    # The worker's own lines (RQ's included) name the worker even when they are about no job.
    assert all(r["worker"] for r in records if r["name"].startswith("rq."))

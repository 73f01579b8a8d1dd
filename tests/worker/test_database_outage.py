"""A short database outage during a run does not fail the job, and metrics land in order."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
from sqlalchemy import select

from core.db import transaction
from core.models import JobMetric
from core.settings import Settings
from tests.conftest import FAST_HYPERPARAMETERS, wait_for_job, wait_for_terminal
from tests.tcp_proxy import TcpProxy
from tuneq.processes import start_worker


def _through(proxy: TcpProxy, url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"{parts.username}@127.0.0.1:{proxy.port}"))


@pytest.mark.slow
def test_worker_rides_out_a_database_outage(
    client: httpx.Client, settings: Settings, tmp_path: Path, tiny_model: Path, uploaded_file: dict[str, Any]
) -> None:
    parts = urlsplit(settings.resolved_database_url)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432).start()
    worker = start_worker(
        tmp_path / "logs", env={"TUNEQ_DATABASE_URL": _through(proxy, settings.resolved_database_url)}
    )
    try:
        body = {
            "base_model": str(tiny_model),
            "training_file": uploaded_file["id"],
            "hyperparameters": {**FAST_HYPERPARAMETERS, "n_epochs": 25},
        }
        job_id = client.post("/finetune", json=body).json()["id"]
        wait_for_job(client, job_id, worker, lambda j: j["progress"]["step"] >= 5, 600)
        proxy.cut()
        time.sleep(4)  # shorter than the heartbeat staleness limit: an outage, not a lost worker
        proxy.restore()
        job = wait_for_terminal(client, job_id, worker)
    finally:
        worker.stop()
        proxy.stop()
    assert job["status"] == "succeeded", job["error"]
    assert job["attempt"] == 1
    with transaction(settings.resolved_database_url) as session:
        steps = list(session.scalars(select(JobMetric.step).where(JobMetric.job_id == job_id).order_by(JobMetric.id)))
    assert steps == list(range(1, job["progress"]["total_steps"] + 1))  # none lost, none out of order

"""A worker serves its own /metrics: what its job processes recorded, and its GPU from NVML."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from core.metrics.gpu import NvmlCollector
from core.settings import Settings
from tests.conftest import FAST_HYPERPARAMETERS, wait_for_terminal
from tests.scraping import scrape, value, wait_for_idle_workers
from tuneq.processes import free_port, start_worker


def test_worker_metrics_port_serves_what_its_job_processes_recorded(
    settings: Settings, client: httpx.Client, tiny_model: Path, uploaded_file: dict[str, Any], tmp_path: Path
) -> None:
    port = free_port()
    worker = start_worker(tmp_path / "logs", gpu=0, env={"TUNEQ_METRICS_PORT": str(port)})  # gpu 0: port + 0
    try:
        body = {
            "base_model": str(tiny_model),
            "training_file": uploaded_file["id"],
            "hyperparameters": {**FAST_HYPERPARAMETERS, "n_epochs": 1},
        }
        job_id = client.post("/finetune", json=body).json()["id"]
        assert wait_for_terminal(client, job_id, worker)["status"] == "succeeded"
        wait_for_idle_workers(settings, worker)
        samples = scrape(f"http://127.0.0.1:{port}")
    finally:
        worker.stop()
    assert value(samples, "tuneq_job_run_seconds_count", outcome="succeeded") == 1
    assert value(samples, "tuneq_job_wait_seconds_count") == 1


@pytest.mark.gpu
def test_nvml_reports_the_memory_and_utilisation_of_the_gpu() -> None:
    families = {f.name: f for f in NvmlCollector([0], "worker-x").collect()}
    (total,) = families["tuneq_gpu_memory_total_bytes"].samples
    assert total.value > 0 and total.labels["gpu"] == "0" and total.labels["worker"] == "worker-x"
    (busy,) = families["tuneq_gpu_utilization_ratio"].samples
    assert 0 <= busy.value <= 1


def test_without_an_nvidia_driver_the_gpu_collector_reports_nothing() -> None:
    collector = NvmlCollector(None)
    if collector.nvml is not None:
        pytest.skip("this machine has an NVIDIA driver")
    assert list(collector.collect()) == []

"""/metrics tells operators what the service is doing, read from real activity.

Gauges come from the database and Redis at scrape time; counters and histograms
are recorded by the processes that see the events (the API, each job process,
the webhook dispatcher) and added up across processes.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from core.settings import Settings
from tests.conftest import FAST_HYPERPARAMETERS, TENANT, api_client, serve, wait_for_job, wait_for_terminal
from tests.scraping import Samples, scrape, series, value, wait_for_idle_workers
from tuneq.processes import Service, start_api

LONG = {**FAST_HYPERPARAMETERS, "n_epochs": 40, "gradient_accumulation_steps": 1}


def _submit(client: httpx.Client, tiny_model: Path, file_id: str) -> str:
    body = {"base_model": str(tiny_model), "training_file": file_id, "hyperparameters": LONG}
    response = client.post("/finetune", json=body)
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


@pytest.mark.slow
def test_metrics_show_queue_jobs_workers_throughput_durations_and_latency(
    settings: Settings, api_key: str, worker: Service, tiny_model: Path, sample_dataset: Path
) -> None:
    # No reconciler: it may add a second wake-up message for a job whose first one a worker already took,
    # which is harmless but would make the queue depth below depend on timing.
    with (
        serve(settings.model_copy(update={"run_maintenance_in_api": False})) as api_url,
        api_client(api_url, api_key) as client,
    ):
        _exercise_and_scrape(client, api_url, settings, worker, tiny_model, sample_dataset)


def _requests(samples: Samples, route: str, status: str) -> float:
    return samples.get(("tuneq_http_request_duration_seconds_count", _labels(route, status)), 0.0)


def _labels(route: str, status: str) -> frozenset[tuple[str, str]]:
    return frozenset({"method": "POST", "route": route, "status": status}.items())


def _exercise_and_scrape(
    client: httpx.Client, api_url: str, settings: Settings, worker: Service, tiny_model: Path, dataset: Path
) -> None:
    # Servers run in this test process record API latency into its one registry, so count from here on.
    before = scrape(api_url)
    with dataset.open("rb") as handle:
        file_id = client.post("/files", files={"file": ("capitals.jsonl", handle)}).json()["id"]
    running_id = _submit(client, tiny_model, file_id)
    wait_for_job(client, running_id, worker, lambda j: j["status"] == "running" and j["progress"]["step"] >= 2, 600)
    queued_id = _submit(client, tiny_model, file_id)  # one worker: this one waits

    busy = scrape(api_url)
    assert value(busy, "tuneq_jobs", status="running", tenant=TENANT) == 1
    assert value(busy, "tuneq_jobs", status="queued", tenant=TENANT) == 1
    assert value(busy, "tuneq_queue_depth") == 1
    assert value(busy, "tuneq_oldest_queued_job_age_seconds") >= 0
    ((worker_labels, running),) = series(busy, "tuneq_running_jobs")
    assert running == 1 and worker_labels["gpu"] == "" and worker_labels["worker"].endswith(".cpu")  # a CPU worker
    ((job_labels, tokens_per_second),) = series(busy, "tuneq_job_tokens_per_second")
    assert job_labels == {"job": running_id, "tenant": TENANT, "worker": worker_labels["worker"]}
    assert tokens_per_second > 0
    assert value(busy, "tuneq_job_wait_seconds_count") == 1  # recorded by the job process, in its own files
    assert _requests(busy, "/finetune", "202") - _requests(before, "/finetune", "202") == 2
    assert value(busy, "tuneq_dependency_up", dependency="database") == 1
    assert value(busy, "tuneq_dependency_up", dependency="redis") == 1

    for job_id in (queued_id, running_id):
        assert client.post(f"/finetune/{job_id}/cancel").status_code == 200
    assert wait_for_terminal(client, running_id, worker)["status"] == "cancelled"
    wait_for_idle_workers(settings, worker)

    after = scrape(api_url)
    assert value(after, "tuneq_jobs", status="cancelled", tenant=TENANT) == 2
    assert value(after, "tuneq_queue_depth") == 0
    assert [v for _, v in series(after, "tuneq_running_jobs")] == [0]
    assert series(after, "tuneq_job_tokens_per_second") == []
    assert value(after, "tuneq_job_run_seconds_count", outcome="cancelled") == 1
    assert value(after, "tuneq_job_run_seconds_bucket", outcome="cancelled", le="+Inf") == 1
    route = "/finetune/{job_id}/cancel"
    assert _requests(after, route, "200") - _requests(before, route, "200") == 2


RECORD_WEBHOOKS = """
from core.metrics.multiprocess import use_multiprocess_dir
from core.settings import get_settings

use_multiprocess_dir(get_settings())
from core.metrics.recorded import record_webhook_delivery

for _ in range(3):
    record_webhook_delivery("delivered")
record_webhook_delivery("failed")
"""


def test_counters_from_separate_processes_add_up_in_one_scrape_of_the_api(settings: Settings, tmp_path: Path) -> None:
    metrics_dir = tmp_path / "metrics"
    env = {"TUNEQ_METRICS_DIR": str(metrics_dir), "TUNEQ_RUN_MAINTENANCE_IN_API": "false"}
    api, base_url = start_api(tmp_path / "logs", env=env)
    try:
        for _ in range(2):  # two dispatcher-like processes, each gone before the scrape
            subprocess.run([sys.executable, "-c", RECORD_WEBHOOKS], env={**_environ(), **env}, check=True)
        for _ in range(2):
            assert httpx.get(f"{base_url}/livez").status_code == 200

        samples = scrape(base_url)
    finally:
        api.stop()
    assert value(samples, "tuneq_webhook_deliveries_total", outcome="delivered") == 6
    assert value(samples, "tuneq_webhook_deliveries_total", outcome="failed") == 2
    # The API process records into the same directory: its own requests are there too.
    assert value(samples, "tuneq_http_request_duration_seconds_count", method="GET", route="/livez", status="200") == 2
    assert len({path.name.rsplit("_", 1)[-1] for path in metrics_dir.glob("*.db")}) == 3  # files of 3 processes


def test_an_unknown_webhook_outcome_is_refused() -> None:
    from core.metrics.recorded import record_webhook_delivery

    with pytest.raises(ValueError):
        record_webhook_delivery("maybe")


def _environ() -> dict[str, str]:
    import os

    return dict(os.environ)

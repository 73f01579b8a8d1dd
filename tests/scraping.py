"""Reading /metrics in tests: parse the text format; wait until a job's metrics are all written."""

from __future__ import annotations

import time

import httpx
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from core.db import transaction
from core.models import Worker
from core.settings import Settings
from tuneq.processes import Service

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(base_url: str) -> Samples:
    response = httpx.get(f"{base_url}/metrics", timeout=30)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            key = (sample.name, frozenset(sample.labels.items()))
            assert key not in samples, f"duplicate series {key}"
            samples[key] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def series(samples: Samples, name: str) -> list[tuple[dict[str, str], float]]:
    return [(dict(labels), v) for (n, labels), v in samples.items() if n == name]


def wait_for_idle_workers(settings: Settings, worker: Service) -> None:
    """The job process marks its worker idle after recording the attempt's run time: the event to wait on."""
    deadline = time.monotonic() + 60
    while True:
        with transaction(settings.resolved_database_url) as session:
            statuses = set(session.scalars(select(Worker.status)))
        if statuses == {"idle"}:
            return
        assert worker.process.poll() is None, worker.log_tail()
        assert time.monotonic() < deadline, f"worker never went idle: {statuses}"
        time.sleep(0.1)

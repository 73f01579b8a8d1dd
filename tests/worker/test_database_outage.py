"""The database is slow or away: a short outage during a run does not fail the job, metrics land in order, and a
stop that comes while the worker waits on the database still stops it."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
import redis
from rq import Worker as RQWorker
from sqlalchemy import select

from core.db import transaction
from core.models import Job, JobMetric, Worker
from core.settings import Settings
from core.states import JobStatus
from core.workers import WorkerStatus
from tests.conftest import FAST_HYPERPARAMETERS, wait_for_job, wait_for_terminal, wait_until
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


@pytest.mark.parametrize(
    ("sql", "first_sent"),
    [(b"UPDATE workers SET heartbeat_at", "at start"), (b"UPDATE jobs SET status", "on a message")],
    ids=["the first heartbeat of an idle worker", "the claim of a job"],
)
def test_a_sigterm_that_comes_while_the_worker_waits_on_the_database_stops_it_and_starts_nothing(
    client: httpx.Client,
    settings: Settings,
    redis_client: redis.Redis,
    tmp_path: Path,
    tiny_model: Path,
    uploaded_file: dict[str, Any],
    sql: bytes,
    first_sent: str,
) -> None:
    """The statement is held in a proxy on its first run (SQL text goes only with the first: psycopg prepares it)."""
    parts = urlsplit(settings.resolved_database_url)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432).start()
    if first_sent == "at start":
        proxy.hold_next(sql)
    worker = start_worker(
        tmp_path / "logs", env={"TUNEQ_DATABASE_URL": _through(proxy, settings.resolved_database_url)}
    )
    try:
        if first_sent == "on a message":
            states = lambda: [w.get_state() for w in RQWorker.all(connection=redis_client)]  # noqa: E731
            wait_until(lambda: states() == ["idle"], 120, "an idle worker")
            proxy.hold_next(sql)
        body = {"base_model": str(tiny_model), "training_file": uploaded_file["id"]}
        job_id = client.post("/finetune", json={**body, "hyperparameters": FAST_HYPERPARAMETERS}).json()["id"]
        assert proxy.holding.wait(120), f"the worker never sent {sql!r}:\n{worker.log_tail()}"
        worker.process.send_signal(signal.SIGTERM)
        wait_until(lambda: "warm shut down requested" in worker.log_path.read_text(), 60, "the worker's stop handler")
        proxy.release()
        # Before: the stop was lost in the transaction's cleanup, and the worker served on (the claim case ran the job).
        exit_code = worker.process.wait(timeout=60)
    finally:
        proxy.stop()
        worker.stop()
    assert exit_code == 0, worker.log_tail()
    assert "trainer.train" not in worker.log_path.read_text(), "no job process may start once the stop came"
    with transaction(settings.resolved_database_url) as session:
        job = session.get(Job, job_id)
        assert job is not None
        assert (job.status, job.attempt, job.worker_id) == (JobStatus.QUEUED, 0, None)  # a claim is handed back
        [row] = session.scalars(select(Worker)).all()
        assert row.status == WorkerStatus.STOPPED

"""Redis comes and goes: the embedded one belongs to the API, is restarted, and no submitted job is lost.

Real processes: ``tuneq api`` owning an embedded redis-server, a ``tuneq worker``
that only connects to it, and kill -9 of the redis-server.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from rq import Worker as RQWorker

from core.embedded_redis import embedded_redis_url
from core.settings import Settings
from tests.conftest import FAST_HYPERPARAMETERS, api_client, create_api_key, wait_for_terminal
from tests.tcp_proxy import TcpProxy
from tuneq.processes import Service, start_api, start_worker
from worker.process import wait_for_redis


def _children(pid: int, name: str) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid), name], capture_output=True, text=True).stdout
    return [int(child) for child in out.split()]


def _answers(url: str) -> bool:
    try:
        with redis.Redis.from_url(url, socket_connect_timeout=1) as client:
            return bool(client.ping())
    except (redis.RedisError, OSError):
        return False


@pytest.fixture
def embedded_env(settings: Settings) -> Iterator[dict[str, str]]:
    # A short data root: unix socket paths are limited to ~100 bytes, and pytest's tmp_path can be longer.
    root = tempfile.mkdtemp(prefix="tq")
    yield {"TUNEQ_REDIS_URL": "", "TUNEQ_DATA_ROOT": root}
    shutil.rmtree(root, ignore_errors=True)


def test_sigterm_to_the_api_stops_the_embedded_redis_it_started(
    settings: Settings, embedded_env: dict[str, str], tmp_path: Path
) -> None:
    api, _ = start_api(tmp_path / "logs", env=embedded_env)
    try:
        [server] = _children(api.process.pid, "redis-server")
        api.process.send_signal(signal.SIGTERM)
        api.process.wait(timeout=60)
    finally:
        api.stop()
    with pytest.raises(ProcessLookupError):  # reaped by its owner, not left running
        os.kill(server, 0)
    assert not _answers(embedded_redis_url(Path(embedded_env["TUNEQ_DATA_ROOT"])))


def test_stopping_a_worker_leaves_the_apis_embedded_redis_running(
    settings: Settings, embedded_env: dict[str, str], tmp_path: Path
) -> None:
    api, _ = start_api(tmp_path / "logs", env=embedded_env)
    worker = start_worker(tmp_path / "logs", env=embedded_env)
    try:
        url = embedded_redis_url(Path(embedded_env["TUNEQ_DATA_ROOT"]))
        _wait_until_listening(worker, url)
        assert _children(worker.process.pid, "redis-server") == []  # a worker never starts one
        assert worker.stop() == 0
        assert _answers(url)
    finally:
        worker.stop()
        api.stop()


@pytest.mark.slow
def test_killing_the_embedded_redis_loses_no_submitted_job(
    settings: Settings, embedded_env: dict[str, str], tmp_path: Path, sample_dataset: Path, tiny_model: Path
) -> None:
    api, base_url = start_api(tmp_path / "logs", env=embedded_env)
    worker: Service | None = None
    try:
        worker = start_worker(tmp_path / "logs", env=embedded_env)
        with api_client(base_url, create_api_key(settings, "acme")) as client:
            with sample_dataset.open("rb") as handle:
                uploaded = client.post("/files", files={"file": ("capitals.jsonl", handle)}).json()
            [server] = _children(api.process.pid, "redis-server")
            os.kill(server, signal.SIGKILL)  # every message and worker registration is gone with it
            job_id = _submit(client, tiny_model, uploaded)
            job = wait_for_terminal(client, job_id, worker, timeout=300)
            assert job["status"] == "succeeded", job
            assert worker.process.poll() is None  # it reconnected instead of exiting
            assert _children(api.process.pid, "redis-server") not in ([], [server])  # restarted by its owner
    finally:
        if worker is not None:
            worker.stop()
        api.stop()


def test_a_stop_that_comes_while_redis_answers_the_first_ping_starts_no_rq_worker(settings: Settings) -> None:
    """A fleet stops the worker it has just restarted: the SIGTERM can come while the worker waits for Redis's
    answer to its first ping. It used to set the stop flag, start the RQ worker anyway, and never stop."""
    host, port = settings.redis_url.removeprefix("redis://").split("/")[0].split(":")
    proxy = TcpProxy(host, int(port), on_accept=lambda: os.kill(os.getpid(), signal.SIGTERM)).start()
    through = settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{proxy.port}/0"})
    before = signal.getsignal(signal.SIGTERM)
    try:
        assert wait_for_redis(through, threading.Event()) is False
    finally:
        proxy.stop()
    assert signal.getsignal(signal.SIGTERM) is before  # the handlers before it are back


def _wait_until_listening(worker: Service, url: str, timeout: float = 600) -> None:
    """Until the worker has registered with RQ (its signal handlers are installed by then)."""
    deadline = time.monotonic() + timeout
    with redis.Redis.from_url(url) as connection:
        while not RQWorker.all(connection=connection):
            assert worker.process.poll() is None, worker.log_tail()
            assert time.monotonic() < deadline, worker.log_tail()
            time.sleep(0.1)


def _submit(client: httpx.Client, tiny_model: Path, uploaded: dict[str, Any]) -> str:
    body = {
        "base_model": str(tiny_model),
        "training_file": uploaded["id"],
        "hyperparameters": {**FAST_HYPERPARAMETERS, "n_epochs": 1},
    }
    response = client.post("/finetune", json=body)
    assert response.status_code == 202, response.text
    return str(response.json()["id"])

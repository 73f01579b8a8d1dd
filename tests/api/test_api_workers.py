"""`tuneq api` with TUNEQ_API_WORKERS=2: two server processes on one port, one set of settings, clean exit."""

from __future__ import annotations

from pathlib import Path

import psutil

from core.settings import Settings
from tests.conftest import api_client, create_api_key, wait_until
from tuneq.processes import start_api


def test_two_api_worker_processes_serve_one_port_and_stop_on_sigterm(settings: Settings, tmp_path: Path) -> None:
    key = create_api_key(settings, "acme")
    api, url = start_api(tmp_path / "logs", env={"TUNEQ_API_WORKERS": "2"})
    try:
        supervisor = psutil.Process(api.process.pid)
        wait_until(lambda: len(server_processes(supervisor)) == 2, timeout=60, what="two API worker processes")
        servers = server_processes(supervisor)
        with api_client(url, key) as client:
            for _ in range(20):
                assert client.get("/finetune").status_code == 200
        # Each worker built its app from the variables the supervisor exported: the same database and tenant.
        with api_client(url, None) as anonymous:
            assert anonymous.get("/finetune").status_code == 401
        assert all(alive(server) for server in servers)
    finally:
        code = api.stop()
    assert code == 0, api.log_tail()
    assert not any(alive(server) for server in servers)


def server_processes(supervisor: psutil.Process) -> list[psutil.Process]:
    """uvicorn's worker processes (multiprocessing spawns them), not its resource tracker or Redis."""
    return [child for child in supervisor.children() if "spawn_main" in " ".join(child.cmdline())]


def alive(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False

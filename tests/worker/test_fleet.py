"""`tuneq workers`: one registered worker per GPU, and a dead one is restarted."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from core.db import transaction
from core.models import Worker
from core.settings import Settings
from tuneq.processes import start_tuneq


def _live_workers(settings: Settings) -> list[Worker]:
    with transaction(settings.resolved_database_url) as session:
        return list(session.scalars(select(Worker).where(Worker.status != "stopped").order_by(Worker.started_at)))


def _wait_for(predicate, timeout: float = 300.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError("condition not met in time")


@pytest.mark.slow
def test_fleet_registers_one_worker_per_gpu_and_restarts_a_dead_one(settings: Settings, tmp_path: Path) -> None:
    fleet = start_tuneq("fleet", ["workers", "--gpus", "0,1"], tmp_path / "logs")
    try:
        registered = _wait_for(lambda: _live_workers(settings) if len(_live_workers(settings)) == 2 else None)
        assert sorted(w.gpu_index for w in registered) == [0, 1]
        assert all(w.host and w.pid and w.heartbeat_at for w in registered)
        victim = next(w for w in registered if w.gpu_index == 1)
        os.kill(victim.pid, signal.SIGKILL)
        replacement = _wait_for(
            lambda: next((w for w in _live_workers(settings) if w.gpu_index == 1 and w.pid != victim.pid), None)
        )
        assert replacement.id != victim.id
    finally:
        assert fleet.stop(timeout=60) == 0, fleet.log_tail()
    assert {w.gpu_index for w in _live_workers(settings)} <= {1}  # both stopped cleanly, except the killed one

"""A GPU job never waits for a webhook receiver: its worker is free again while the receiver still hangs."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from core.db import transaction
from core.models import Worker
from core.settings import Settings
from tests.conftest import FAST_HYPERPARAMETERS, wait_for_terminal, wait_until
from tuneq.processes import Service
from tuneq.webhook_receiver import WebhookReceiver


def _worker_idle(settings: Settings) -> bool:
    with transaction(settings.resolved_database_url) as session:
        rows = session.scalars(select(Worker)).all()
    return bool(rows) and all(w.status == "idle" and w.current_job_id is None for w in rows)


@pytest.mark.slow
def test_job_finishes_and_frees_its_worker_while_the_receiver_is_still_blocked(
    settings: Settings,
    client: httpx.Client,
    worker: Service,
    dispatcher: Service,
    tiny_model: Path,
    uploaded_file: dict[str, Any],
) -> None:
    release = threading.Event()
    receiver = WebhookReceiver(hold=release).start()
    try:
        job = client.post(
            "/finetune",
            json={
                "base_model": str(tiny_model),
                "training_file": uploaded_file["id"],
                "hyperparameters": {**FAST_HYPERPARAMETERS, "n_epochs": 1},
                "webhook_url": receiver.url,
            },
        ).json()
        assert wait_for_terminal(client, job["id"], worker)["status"] == "succeeded"
        hanging = receiver.wait_for_attempts(1, timeout=60)[0]  # the dispatcher's POST, held open by the receiver
        wait_until(lambda: _worker_idle(settings), what="the worker was idle again")
        assert not release.is_set() and receiver.received == []  # ...while that POST still hangs
        assert hanging.body["type"] == "fine_tuning.job.succeeded"
        release.set()
        hook = receiver.wait_for(1, timeout=60)[0]  # (a retry may follow if the held POST timed out first)
    finally:
        receiver.stop()
    assert hook.headers["webhook-id"] == hanging.headers["webhook-id"]
    assert worker.process.poll() is None and dispatcher.process.poll() is None

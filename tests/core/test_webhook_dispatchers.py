"""Real ``tuneq dispatcher`` processes: the outbox outlives them, and two of them never send one attempt twice."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import select

from core import jobs
from core.db import transaction
from core.models import WebhookAttempt, WebhookDelivery
from core.settings import Settings
from core.states import JobStatus
from core.webhook_endpoints import NewEndpoint, create_endpoint
from tests.conftest import submit_in_database, wait_until
from tests.core.test_webhooks import TENANT, all_settled, claim, succeed
from tuneq.processes import free_port, start_dispatcher
from tuneq.webhook_receiver import WebhookReceiver


@pytest.fixture
def submit(settings: Settings, tiny_model: Path, sample_dataset: Path) -> Callable[..., str]:
    def submit(webhook_url: str | None = None) -> str:
        return submit_in_database(settings, TENANT, tiny_model, sample_dataset, webhook_url=webhook_url)

    return submit


def failed_attempts(settings: Settings) -> int:
    with transaction(settings.resolved_database_url) as session:
        return len(session.scalars(select(WebhookAttempt.id).where(WebhookAttempt.status_code.is_(None))).all())


def test_receiver_down_while_the_dispatcher_restarts_gets_every_event_afterwards_in_order(
    settings: Settings, submit: Callable[..., str], tmp_path: Path
) -> None:
    port = free_port()  # nothing listens here yet: the receiver is down
    with transaction(settings.resolved_database_url) as session:
        create_endpoint(session, settings, tenant=TENANT, new=NewEndpoint(f"http://127.0.0.1:{port}/hooks"))
    job_id = submit()
    claim(settings, job_id)
    with transaction(settings.resolved_database_url) as session:  # a lost worker's job goes back to the queue
        jobs.transition(session, job_id, JobStatus.QUEUED, "requeued", owner="w1", worker_id=None)
    claim(settings, job_id, "w2")
    with transaction(settings.resolved_database_url) as session:
        jobs.finish_job(session, job_id, JobStatus.SUCCEEDED, "done", owner="w2")

    # Retries far enough apart that the down time cannot use them all up.
    slow_retries = {"TUNEQ_WEBHOOK_RETRY_DELAYS_SECONDS": json.dumps([0.3] * 200)}
    first = start_dispatcher(tmp_path / "logs", "dispatcher-1", env=slow_retries)
    try:
        wait_until(lambda: failed_attempts(settings) >= 2, what="the dispatcher tried the down receiver")
    finally:
        assert first.stop() == 0, first.log_tail()
    receiver = WebhookReceiver(port=port).start()
    second = start_dispatcher(tmp_path / "logs", "dispatcher-2", env=slow_retries)
    try:
        hooks = receiver.wait_for(4, timeout=60)
        wait_until(lambda: all_settled(settings), what="every delivery settled")
    finally:
        second.stop()
        receiver.stop()
    assert [h.body["type"] for h in hooks] == [
        "fine_tuning.job.running",
        "fine_tuning.job.queued",
        "fine_tuning.job.running",
        "fine_tuning.job.succeeded",
    ]
    assert len(receiver.attempts) == 4  # nothing after the first was sent while the first was failing


def test_two_dispatchers_on_one_database_deliver_each_event_exactly_once(
    settings: Settings, submit: Callable[..., str], tmp_path: Path
) -> None:
    receiver = WebhookReceiver().start()
    try:
        with transaction(settings.resolved_database_url) as session:
            create_endpoint(session, settings, tenant=TENANT, new=NewEndpoint(receiver.url + "/endpoint"))
        job_ids = [submit(webhook_url=receiver.url + "/job") for _ in range(15)]
        for job_id in job_ids:  # 15 x (running + succeeded) to the endpoint + 15 succeeded to the jobs' URL
            succeed(settings, job_id)
        dispatchers = [start_dispatcher(tmp_path / "logs", f"dispatcher-{n}") for n in (1, 2)]
        try:
            receiver.wait_for(45, timeout=600)
            wait_until(lambda: all_settled(settings), what="every delivery settled")
        finally:
            for service in dispatchers:
                assert service.stop() == 0, service.log_tail()
    finally:
        receiver.stop()
    arrivals = Counter((hook.path, hook.headers["webhook-id"]) for hook in receiver.attempts)
    assert len(arrivals) == 45 and set(arrivals.values()) == {1}, arrivals.most_common(3)
    with transaction(settings.resolved_database_url) as session:
        rows = session.scalars(select(WebhookDelivery)).all()
        senders = session.scalars(select(WebhookAttempt.dispatcher)).all()
    assert len(rows) == 45 and all(r.status == "delivered" and r.attempts == 1 for r in rows)
    assert len(senders) == 45

"""Webhooks end to end below HTTP: outbox rows written by transitions, sent by a real dispatcher
to real loopback receivers, verified with the standardwebhooks and openai packages."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import redis
from openai import OpenAI
from sqlalchemy import select, update
from standardwebhooks import Webhook

from core import jobs
from core.db import transaction, utcnow
from core.models import Job, JobEvent, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from core.queue import job_queue
from core.recovery import RecoveryReport, recover_lost_jobs
from core.settings import Settings
from core.states import JobStatus
from core.webhook_delivery import webhook_client
from core.webhook_endpoints import NewEndpoint, create_endpoint, tenant_secret
from tests.conftest import dispatching, submit_in_database, wait_until
from tuneq.webhook_receiver import ReceivedWebhook, WebhookReceiver

TENANT = "acme"


@pytest.fixture
def submit(settings: Settings, tiny_model: Path, sample_dataset: Path) -> Callable[..., str]:
    def submit(webhook_url: str | None = None) -> str:
        return submit_in_database(settings, TENANT, tiny_model, sample_dataset, webhook_url=webhook_url)

    return submit


@pytest.fixture
def hooks() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver().start()
    yield receiver
    receiver.stop()


def deliveries(settings: Settings, job_id: str) -> list[WebhookDelivery]:
    with transaction(settings.resolved_database_url) as session:
        query = select(WebhookDelivery).where(WebhookDelivery.job_id == job_id).order_by(WebhookDelivery.sequence)
        return list(session.scalars(query))


def all_settled(settings: Settings) -> bool:
    with transaction(settings.resolved_database_url) as session:
        statuses = session.scalars(select(WebhookDelivery.status)).all()
    return bool(statuses) and all(s in ("delivered", "failed") for s in statuses)


def the_tenant_secret(settings: Settings) -> str:
    with transaction(settings.resolved_database_url) as session:
        return tenant_secret(session, TENANT).secret


def verified(hook: ReceivedWebhook, secret: str) -> str:
    """Check the signature as a receiver would, with both libraries; returns the event type."""
    body = Webhook(secret).verify(hook.raw, hook.headers)
    event = OpenAI(api_key="unused").webhooks.unwrap(hook.raw, hook.headers, secret=secret)
    assert event.id == body["id"] == hook.headers["webhook-id"]
    assert body["object"] == "event" and isinstance(body["created_at"], int)
    assert event.type == body["type"]
    return str(event.type)


def claim(settings: Settings, job_id: str, worker: str = "w1") -> None:
    with transaction(settings.resolved_database_url) as session:
        assert jobs.claim_job(session, job_id, worker) is not None


def finish(settings: Settings, job_id: str, status: JobStatus, **values: object) -> None:
    with transaction(settings.resolved_database_url) as session:
        jobs.finish_job(session, job_id, status, f"{status}", owner="w1", **values)


def succeed(settings: Settings, job_id: str) -> None:
    claim(settings, job_id)
    finish(settings, job_id, JobStatus.SUCCEEDED, adapter_path=f"jobs/{job_id}/adapter")


def fail(settings: Settings, job_id: str) -> None:
    claim(settings, job_id)
    finish(settings, job_id, JobStatus.FAILED, error_code="model_load_failed", error_message="no such model")


def cancel_while_queued(settings: Settings, job_id: str) -> None:
    with (
        redis.Redis.from_url(str(settings.redis_url)) as connection,
        transaction(settings.resolved_database_url) as session,
    ):
        jobs.cancel_job(session, job_queue(connection, settings), tenant=TENANT, job_id=job_id)


def cancel_while_running(settings: Settings, job_id: str) -> None:
    claim(settings, job_id)
    cancel_while_queued(settings, job_id)  # a running job: only asks it to stop
    finish(settings, job_id, JobStatus.CANCELLED)  # what the runner does at the next step


def lose_the_worker(settings: Settings, job_id: str) -> None:
    """Last attempt, then silence: the reaper fails the job (as tests/core/test_recovery_and_fairness.py)."""
    claim(settings, job_id)
    hour_ago = utcnow() - timedelta(hours=1)
    with transaction(settings.resolved_database_url) as session:
        session.execute(
            update(Job).where(Job.id == job_id).values(max_attempts=1, started_at=hour_ago, heartbeat_at=hour_ago)
        )
    report = RecoveryReport()
    with redis.Redis.from_url(str(settings.redis_url)) as connection:
        recover_lost_jobs(settings, job_queue(connection, settings), report)
    assert report.failed == [job_id]


@pytest.mark.parametrize(
    ("drive", "event_type"),
    [
        (succeed, "fine_tuning.job.succeeded"),
        (fail, "fine_tuning.job.failed"),
        (cancel_while_queued, "fine_tuning.job.cancelled"),
        (cancel_while_running, "fine_tuning.job.cancelled"),
        (lose_the_worker, "fine_tuning.job.failed"),
    ],
    ids=["succeeded", "failed", "cancelled-while-queued", "cancelled-while-running", "reaper-failed"],
)
def test_every_terminal_transition_sends_exactly_one_signed_event_of_its_type(
    settings: Settings,
    submit: Callable[..., str],
    hooks: WebhookReceiver,
    drive: Callable[[Settings, str], None],
    event_type: str,
) -> None:
    job_id = submit(webhook_url=hooks.url)
    with dispatching(settings):
        drive(settings, job_id)
        wait_until(lambda: all_settled(settings), what="the delivery settled")
    [delivery] = deliveries(settings, job_id)  # the job's own URL hears only the terminal event
    assert delivery.status == "delivered" and delivery.attempts == 1
    [hook] = hooks.received
    assert len(hooks.attempts) == 1
    assert verified(hook, the_tenant_secret(settings)) == event_type
    assert hook.body["data"]["id"] == job_id and hook.body["data"]["status"] == event_type.rsplit(".", 1)[1]
    if drive is succeed:
        assert hook.body["data"]["adapter"] == "adapter"
    if drive in (fail, lose_the_worker):
        assert hook.body["data"]["error"]["code"] in ("model_load_failed", "worker_lost")


def test_a_transition_writes_one_outbox_row_per_subscribed_endpoint_and_a_rollback_writes_none(
    settings: Settings, submit: Callable[..., str]
) -> None:
    with transaction(settings.resolved_database_url) as session:
        every = create_endpoint(session, settings, tenant=TENANT, new=NewEndpoint("http://127.0.0.1:9/all")).id
        create_endpoint(
            session,
            settings,
            tenant=TENANT,
            new=NewEndpoint("http://127.0.0.1:9/done", event_types=["fine_tuning.job.succeeded"]),
        )
        create_endpoint(session, settings, tenant="someone-else", new=NewEndpoint("http://127.0.0.1:9/other"))
    job_id = submit(webhook_url="http://127.0.0.1:9/job")

    with pytest.raises(RuntimeError), transaction(settings.resolved_database_url) as session:
        jobs.claim_job(session, job_id, "w1")
        raise RuntimeError("the claim's transaction rolls back")
    assert deliveries(settings, job_id) == []

    claim(settings, job_id)
    [running] = deliveries(settings, job_id)  # running: not terminal, so not the job's URL; not the filtered one
    assert (running.endpoint_id, running.event_type) == (every, "fine_tuning.job.running")

    finish(settings, job_id, JobStatus.SUCCEEDED)
    done = [d for d in deliveries(settings, job_id) if d.event_type == "fine_tuning.job.succeeded"]
    assert sorted(d.url for d in done) == [
        "http://127.0.0.1:9/all",
        "http://127.0.0.1:9/done",
        "http://127.0.0.1:9/job",
    ]
    assert len({d.event_id for d in done}) == 1  # one event, delivered to three places
    assert all(d.sequence > running.sequence for d in done)


def test_receiver_failing_three_times_then_answering_gets_the_event_under_one_webhook_id(
    settings: Settings, submit: Callable[..., str]
) -> None:
    receiver = WebhookReceiver(script=[500, 500, 500]).start()
    try:
        job_id = submit(webhook_url=receiver.url)
        with dispatching(settings):
            succeed(settings, job_id)
            wait_until(lambda: all_settled(settings), what="the delivery settled")
    finally:
        receiver.stop()
    assert [a.answered for a in receiver.attempts] == [500, 500, 500, 200]
    assert len({a.headers["webhook-id"] for a in receiver.attempts}) == 1
    [delivery] = deliveries(settings, job_id)
    assert delivery.status == "delivered" and delivery.attempts == 4
    with transaction(settings.resolved_database_url) as session:
        log = session.scalars(select(WebhookAttempt).where(WebhookAttempt.delivery_id == delivery.id)).all()
        assert [a.status_code for a in log] == [500, 500, 500, 200]
        assert all(a.duration_ms >= 0 for a in log) and log[0].error == "receiver answered 500"


def test_receiver_answering_410_gone_disables_its_endpoint_and_the_job_is_told(
    settings: Settings, submit: Callable[..., str]
) -> None:
    receiver = WebhookReceiver(status=410).start()
    try:
        with transaction(settings.resolved_database_url) as session:
            endpoint_id = create_endpoint(session, settings, tenant=TENANT, new=NewEndpoint(receiver.url)).id
        job_id = submit()
        with dispatching(settings):
            succeed(settings, job_id)  # running, then succeeded: the second waits behind the first, then fails too
            wait_until(lambda: all_settled(settings), what="the deliveries settled")
    finally:
        receiver.stop()
    assert len(receiver.attempts) == 1
    assert [d.status for d in deliveries(settings, job_id)] == ["failed", "failed"]
    with transaction(settings.resolved_database_url) as session:
        endpoint = session.get(WebhookEndpoint, endpoint_id)
        assert endpoint is not None and endpoint.disabled_at is not None and "410" in str(endpoint.disabled_reason)
        warnings = session.scalars(
            select(JobEvent.message).where(JobEvent.job_id == job_id, JobEvent.level == "warning")
        ).all()
    assert any("failed for good" in message and "410" in message for message in warnings)
    second = submit()
    claim(settings, second)
    assert deliveries(settings, second) == []  # a disabled endpoint is sent nothing new


def test_a_send_the_url_guard_refuses_is_a_failed_attempt_with_the_reason(
    settings: Settings, submit: Callable[..., str], hooks: WebhookReceiver
) -> None:
    job_id = submit(webhook_url=hooks.url)  # accepted while private addresses were allowed
    strict = settings.model_copy(update={"allow_private_webhooks": False, "webhook_retry_delays_seconds": []})
    with dispatching(strict):
        succeed(settings, job_id)
        wait_until(lambda: all_settled(settings), what="the delivery settled")
    [delivery] = deliveries(settings, job_id)
    assert delivery.status == "failed" and "refused to send" in str(delivery.last_error)
    assert "loopback" in str(delivery.last_error) and hooks.attempts == []


def test_the_webhook_client_connects_only_to_addresses_the_guard_allows(
    settings: Settings, hooks: WebhookReceiver
) -> None:
    """The send-time check and the connection each resolve the name; a DNS server may answer them differently
    (rebinding). So the connection checks the addresses it connects to, whatever was checked before."""
    by_name = hooks.url.replace("127.0.0.1", "localhost")
    strict = settings.model_copy(update={"allow_private_webhooks": False})
    with webhook_client(strict) as client:
        for url in (hooks.url, by_name):
            with pytest.raises(httpx.ConnectError, match=r"refused to connect: url resolves to .*loopback"):
                client.post(url, content=b"{}")
    assert hooks.attempts == []
    with webhook_client(settings) as client:  # private addresses allowed: both arrive
        assert [client.post(url, content=b"{}").status_code for url in (hooks.url, by_name)] == [200, 200]
    assert len(hooks.attempts) == 2

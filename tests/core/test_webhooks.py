"""Webhook delivery over real loopback HTTP: retries, and a receiver that is down changes no job."""

from __future__ import annotations

from core.webhooks import deliver
from tuneq.processes import free_port
from tuneq.webhook_receiver import WebhookReceiver

EVENT = {"id": "evt-1", "type": "fine_tune.job.succeeded", "data": {"id": "ftjob-1"}}


def test_delivery_posts_the_event_with_its_id() -> None:
    receiver = WebhookReceiver().start()
    try:
        result = deliver(receiver.url, EVENT, attempts=3, timeout=5, backoff=0.01)
        assert result.delivered and result.attempts == 1 and result.status_code == 200
        [hook] = receiver.wait_for(1, timeout=5)
        assert hook.body == EVENT and hook.headers["webhook-id"] == "evt-1"
    finally:
        receiver.stop()


def test_server_errors_are_retried_then_reported() -> None:
    receiver = WebhookReceiver(status=503).start()
    try:
        result = deliver(receiver.url, EVENT, attempts=3, timeout=5, backoff=0.01)
    finally:
        receiver.stop()
    assert not result.delivered and result.attempts == 3 and result.status_code == 503


def test_client_errors_are_not_retried() -> None:
    receiver = WebhookReceiver(status=410).start()
    try:
        result = deliver(receiver.url, EVENT, attempts=3, timeout=5, backoff=0.01)
    finally:
        receiver.stop()
    assert not result.delivered and result.attempts == 1


def test_unreachable_receiver_is_reported_not_raised() -> None:
    result = deliver(f"http://127.0.0.1:{free_port()}/hooks", EVENT, attempts=2, timeout=2, backoff=0.01)
    assert not result.delivered and result.attempts == 2 and "ConnectError" in (result.error or "")

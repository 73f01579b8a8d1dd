"""Webhook endpoints, secrets, deliveries and redelivery over the real HTTP API."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from standardwebhooks import Webhook

from core.db import utcnow
from core.settings import Settings
from tests.conftest import api_client, dispatching, serve, wait_until
from tests.core.test_webhooks import claim, verified
from tuneq.webhook_receiver import WebhookReceiver


def _submit(client: httpx.Client, model: Path, dataset: Path, **extra: Any) -> dict[str, Any]:
    with dataset.open("rb") as handle:
        file_id = client.post("/files", files={"file": (dataset.name, handle)}).raise_for_status().json()["id"]
    body = {"base_model": str(model), "training_file": file_id, **extra}
    job: dict[str, Any] = client.post("/finetune", json=body).raise_for_status().json()
    return job


def test_endpoint_secret_is_shown_at_creation_and_never_again(client: httpx.Client) -> None:
    response = client.post(
        "/webhook_endpoints",
        json={"url": "http://127.0.0.1:9/hooks", "event_types": ["fine_tuning.job.succeeded"], "description": "ci"},
    )
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["secret"].startswith("whsec_") and response.headers["location"].endswith(created["id"])
    assert created["event_types"] == ["fine_tuning.job.succeeded"] and created["description"] == "ci"
    [listed] = client.get("/webhook_endpoints").json()["data"]
    fetched = client.get(f"/webhook_endpoints/{created['id']}").json()
    assert "secret" not in listed and "secret" not in fetched and fetched["id"] == created["id"]
    assert client.delete(f"/webhook_endpoints/{created['id']}").status_code == 204
    assert client.get(f"/webhook_endpoints/{created['id']}").status_code == 404
    assert client.get("/webhook_endpoints").json()["data"] == []


def test_another_tenants_endpoints_and_deliveries_answer_404(
    client: httpx.Client, other: httpx.Client, settings: Settings, tiny_model: Path, sample_dataset: Path
) -> None:
    theirs = other.post("/webhook_endpoints", json={"url": "http://127.0.0.1:9/hooks"}).json()
    job = _submit(other, tiny_model, sample_dataset)
    claim(settings, job["id"])  # running: one delivery to their endpoint
    [delivery] = other.get(f"/finetune/{job['id']}/webhooks").json()["data"]
    for method, path in [
        ("GET", f"/webhook_endpoints/{theirs['id']}"),
        ("DELETE", f"/webhook_endpoints/{theirs['id']}"),
        ("POST", f"/webhook_endpoints/{theirs['id']}/rotate_secret"),
        ("GET", f"/finetune/{job['id']}/webhooks"),
        ("POST", f"/webhook_deliveries/{delivery['id']}/redeliver"),
    ]:
        response = client.request(method, path)
        assert response.status_code == 404, (method, path, response.text)
        assert response.json()["error"]["type"] == "not_found_error"
    assert client.get("/webhook_endpoints").json()["data"] == []
    assert client.get("/webhook_secret").json()["secret"] != other.get("/webhook_secret").json()["secret"]


def test_endpoint_to_an_internal_address_or_with_an_unknown_event_type_is_refused(
    settings: Settings, api_key: str, client: httpx.Client
) -> None:
    with serve(settings.model_copy(update={"allow_private_webhooks": False})) as api, api_client(api, api_key) as c:
        response = c.post("/webhook_endpoints", json={"url": "http://127.0.0.1:9/hooks"})
    assert response.status_code == 400 and response.json()["error"]["param"] == "url", response.text
    response = client.post("/webhook_endpoints", json={"url": "http://127.0.0.1:9/h", "event_types": ["job.done"]})
    assert response.status_code == 400 and response.json()["error"]["param"] == "event_types", response.text
    assert "fine_tuning.job.succeeded" in response.json()["error"]["message"]  # says what would be accepted


def test_rotated_secret_signs_beside_the_old_one_during_the_overlap(
    settings: Settings, client: httpx.Client, receiver: WebhookReceiver, tiny_model: Path, sample_dataset: Path
) -> None:
    old = client.post("/webhook_endpoints", json={"url": receiver.url}).json()
    rotated = client.post(f"/webhook_endpoints/{old['id']}/rotate_secret").json()
    assert rotated["secret"] != old["secret"]
    expires = datetime.fromisoformat(rotated["previous_secret_expires_at"])
    assert abs(expires - (utcnow() + timedelta(hours=24))) < timedelta(minutes=1)
    job = _submit(client, tiny_model, sample_dataset)
    with dispatching(settings):
        claim(settings, job["id"])
        [hook] = receiver.wait_for(1, timeout=60)
    assert len(hook.headers["webhook-signature"].split(" ")) == 2
    assert verified(hook, old["secret"]) == verified(hook, rotated["secret"]) == "fine_tuning.job.running"


def test_job_webhooks_list_every_attempt_and_redeliver_sends_again_under_the_same_webhook_id(
    settings: Settings, client: httpx.Client, tiny_model: Path, sample_dataset: Path
) -> None:
    receiver = WebhookReceiver(script=[503]).start()
    try:
        job = _submit(client, tiny_model, sample_dataset, webhook_url=receiver.url)
        secret = client.get("/webhook_secret").raise_for_status().json()["secret"]
        with dispatching(settings):
            assert client.post(f"/finetune/{job['id']}/cancel").json()["status"] == "cancelled"
            receiver.wait_for(1, timeout=60)
            wait_until(
                lambda: client.get(f"/finetune/{job['id']}/webhooks").json()["data"][0]["status"] == "delivered",
                what="the delivery was recorded",
            )
            [delivery] = client.get(f"/finetune/{job['id']}/webhooks").json()["data"]
            again = client.post(f"/webhook_deliveries/{delivery['id']}/redeliver")
            assert again.status_code == 200, again.text
            hooks = receiver.wait_for(2, timeout=60)
    finally:
        receiver.stop()
    assert delivery["event_type"] == "fine_tuning.job.cancelled" and delivery["endpoint_id"] is None
    assert [a["status_code"] for a in delivery["attempt_log"]] == [503, 200]
    assert delivery["attempt_log"][0]["error"] == "receiver answered 503"
    assert hooks[0].headers["webhook-id"] == hooks[1].headers["webhook-id"] == delivery["event_id"]
    assert all(Webhook(secret).verify(h.raw, h.headers)["type"] == "fine_tuning.job.cancelled" for h in hooks)

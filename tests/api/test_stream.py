"""GET /finetune/{id}/stream: every follower gets every row in order, resumes exactly, and costs no extra polls."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from api.job_feed import QUERIES_PER_POLL, JobFeed
from api.main import create_app
from core import jobs
from core.db import transaction
from core.settings import Settings
from tests.conftest import FAST_HYPERPARAMETERS, api_client, create_api_key, serve, submit_in_database, wait_until
from tuneq.client import ApiClient, ApiError, StreamMessage
from tuneq.processes import Service

FOLLOWERS = 5


@pytest.fixture
def app(settings: Settings) -> FastAPI:
    return create_app(settings.model_copy(update={"stream_heartbeat_seconds": 1.0}))


@pytest.fixture
def app_url(settings: Settings, app: FastAPI) -> Iterator[str]:
    with serve(settings, app) as url:
        yield url


def follow_in_thread(url: str, key: str, job_id: str, into: list[StreamMessage]) -> threading.Thread:
    def run() -> None:
        with ApiClient(url, key) as client:
            into.extend(client.stream(job_id))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def rows_of(messages: list[StreamMessage], kind: str) -> list[int]:
    """Event ids, or metric steps (the metrics list of the API has no row ids)."""
    field = "id" if kind == "event" else "step"
    return [m.data[field] for m in messages if m.event == kind]


@pytest.mark.slow
def test_concurrent_streams_each_receive_every_event_and_metric_of_a_running_job_in_order(
    settings: Settings, app: FastAPI, app_url: str, worker: Service, tiny_model: Path, sample_dataset: Path
) -> None:
    key = create_api_key(settings, "acme")
    with api_client(app_url, key) as client, sample_dataset.open("rb") as handle:
        file_id = client.post("/files", files={"file": ("capitals.jsonl", handle)}).json()["id"]
        body = {"base_model": str(tiny_model), "training_file": file_id, "hyperparameters": FAST_HYPERPARAMETERS}
        job_id = client.post("/finetune", json=body).json()["id"]

        received: list[list[StreamMessage]] = [[] for _ in range(FOLLOWERS)]
        threads = [follow_in_thread(app_url, key, job_id, into) for into in received]
        wait_until(lambda: getattr(app.state, "job_feed", None) is not None, what="a stream opened")
        feed: JobFeed = app.state.job_feed  # the one watcher of this API process
        wait_until(lambda: feed.subscriber_count == FOLLOWERS, what="all streams subscribed")
        polls, queries = feed.polls, feed.queries
        for thread in threads:
            thread.join(timeout=300)
            assert not thread.is_alive(), f"a stream did not end:\n{worker.log_tail()}"

        # One watcher polled for all of them: per poll at most the fixed set of queries, whatever the followers.
        assert feed.polls > polls
        assert feed.queries - queries <= (QUERIES_PER_POLL + 1) * (feed.polls - polls)
        events = [e["id"] for e in client.get(f"/finetune/{job_id}/events").json()["data"]]
        metrics = [m["step"] for m in client.get(f"/finetune/{job_id}/metrics").json()["data"]]
        final = client.get(f"/finetune/{job_id}").json()

    assert final["status"] == "succeeded", final["error"]
    assert len(metrics) == final["progress"]["total_steps"] > 0
    for messages in received:
        assert rows_of(messages, "event") == events
        assert rows_of(messages, "metric") == metrics
        assert messages[-1].event == "end"
        assert messages[-2].event == "job" and messages[-2].data["status"] == "succeeded"
        statuses = [
            m.data["data"]["status"] for m in messages if m.event == "event" and "status" in (m.data["data"] or {})
        ]
        assert statuses[-2:] == ["running", "succeeded"]


def _write_metric(settings: Settings, job_id: str, step: int) -> None:
    with transaction(settings.resolved_database_url) as session:
        jobs.record_progress(session, job_id, 10, step=step, loss=1.0 / step, tokens_per_second=100.0)


def _write_event(settings: Settings, job_id: str, message: str) -> None:
    with transaction(settings.resolved_database_url) as session:
        jobs.add_event(session, job_id, message)


def test_reconnecting_with_last_event_id_receives_exactly_what_came_after(
    settings: Settings, app_url: str, tiny_model: Path, sample_dataset: Path
) -> None:
    key = create_api_key(settings, "acme")
    job_id = submit_in_database(settings, "acme", tiny_model, sample_dataset)
    for step in (1, 2):
        _write_metric(settings, job_id, step)
    with ApiClient(app_url, key) as client:
        first: list[StreamMessage] = []
        stream = client.stream(job_id)
        for message in stream:
            first.append(message)
            if message.event == "job":  # the backlog is out; what follows is live
                break
        _write_event(settings, job_id, "live one")
        _write_metric(settings, job_id, 3)
        for message in stream:
            first.append(message)
            if message.event == "metric" and message.data["step"] == 3:
                break
        stream.close()  # the client goes away
        resume_at = [m.id for m in first if m.id][-1]

        _write_event(settings, job_id, "while away")
        _write_metric(settings, job_id, 4)
        with api_client(app_url, key) as http:
            assert http.post(f"/finetune/{job_id}/cancel").json()["status"] == "cancelled"
        second = list(client.stream(job_id, last_event_id=resume_at))

        all_events = [e["id"] for e in client.request("GET", f"/finetune/{job_id}/events")["data"]]
        all_metrics = [m["step"] for m in client.request("GET", f"/finetune/{job_id}/metrics")["data"]]

    assert [m.data["message"] for m in first if m.event == "event"][-1] == "live one"
    # Together, exactly every row once, in order: nothing lost, nothing repeated.
    assert rows_of(first, "event") + rows_of(second, "event") == all_events
    assert rows_of(first, "metric") + rows_of(second, "metric") == all_metrics
    assert [m.data["message"] for m in second if m.event == "event"] == ["while away", "cancelled while queued"]
    assert [m.data["step"] for m in second if m.event == "metric"] == [4]
    assert second[-1].event == "end"


def test_stream_is_tenant_checked_and_refuses_a_malformed_last_event_id(
    settings: Settings, app_url: str, tiny_model: Path, sample_dataset: Path
) -> None:
    job_id = submit_in_database(settings, "acme", tiny_model, sample_dataset)
    with ApiClient(app_url, create_api_key(settings, "other")) as other:
        with pytest.raises(ApiError) as unknown:
            next(other.stream(job_id))
        assert unknown.value.status == 404
    with ApiClient(app_url, None) as anonymous, pytest.raises(ApiError) as anonymous_error:
        next(anonymous.stream(job_id))
    assert anonymous_error.value.status == 401
    headers = {"Authorization": f"Bearer {create_api_key(settings, 'acme')}", "Last-Event-ID": "42"}
    refused = httpx.get(f"{app_url}/finetune/{job_id}/stream", headers=headers)
    assert refused.status_code == 400 and "Last-Event-ID" in refused.json()["error"]["message"]

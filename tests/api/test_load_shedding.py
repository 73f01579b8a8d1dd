"""Beyond capacity the API answers 503 with Retry-After in the error envelope, fast, instead of waiting."""

from __future__ import annotations

import asyncio
import gc
import time
from pathlib import Path

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from api.load_shedding import ConcurrencyLimit, LoopBacklog
from core.db import engine_for
from core.settings import Settings, get_settings
from tests.conftest import ONE_AT_A_TIME, api_client, create_api_key, serve


def test_exhausted_database_pool_answers_503_with_retry_after(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = create_api_key(settings, "acme")
    # An engine of its own (a distinct URL), with room for one connection and a short wait.
    small = f"{settings.resolved_database_url}&application_name=tuneq_pool_test"
    monkeypatch.setenv("TUNEQ_DATABASE_URL", small)
    monkeypatch.setenv("TUNEQ_DATABASE_POOL_SIZE", "1")
    monkeypatch.setenv("TUNEQ_DATABASE_MAX_OVERFLOW", "0")
    monkeypatch.setenv("TUNEQ_DATABASE_POOL_TIMEOUT_SECONDS", "0.2")
    get_settings.cache_clear()
    try:
        # A write: reads run on the event loop with a pool of their own (api.deps.Reader).
        unknown = "/finetune/ftjob-000000000000000000000000/cancel"
        with serve(get_settings()) as url, api_client(url, key) as client:
            assert client.post(unknown).status_code == 404
            with engine_for(small).connect():  # every connection of the pool is busy
                response = client.post(unknown)
            assert response.status_code == 503, response.text
            assert response.headers["Retry-After"] == "1"
            assert response.json()["error"]["code"] == "overloaded"
            assert client.post(unknown).status_code == 404  # and serves again once one is free
    finally:
        engine_for(small).dispose()
        get_settings.cache_clear()


@ONE_AT_A_TIME
def test_200_concurrent_clients_each_get_2xx_429_or_503_and_none_hangs(
    client: httpx.Client, api_url: str, api_key: str, uploaded_file: dict[str, object], tiny_model: Path
) -> None:
    body = {"base_model": str(tiny_model), "training_file": uploaded_file["id"], "hyperparameters": {"n_epochs": 1}}
    known = client.post("/finetune", json=body).json()["id"]
    answers: list[int] = []
    failures: list[str] = []

    async def one_client(http: httpx.AsyncClient, n: int) -> None:
        for request in (http.post("/finetune", json=body), http.get("/finetune"), http.get(f"/finetune/{known}")):
            try:
                answers.append((await request).status_code)
            except httpx.HTTPError as exc:  # a timeout (the outer bound: a few seconds) or a dropped connection
                failures.append(f"client {n}: {type(exc).__name__}")

    async def two_hundred_clients() -> None:
        limits = httpx.Limits(max_connections=200)
        headers = {"Authorization": f"Bearer {api_key}"}
        async with httpx.AsyncClient(base_url=api_url, headers=headers, timeout=10, limits=limits) as http:
            await asyncio.gather(*(one_client(http, n) for n in range(200)))

    asyncio.run(two_hundred_clients())
    assert failures == []
    assert len(answers) == 600
    assert set(answers) <= {200, 202, 429, 503}, sorted(set(answers))


def test_requests_that_waited_too_long_behind_a_busy_event_loop_are_shed_at_once(settings: Settings) -> None:
    """Reads run on the event loop; 30 requests that each hold it for 0.1 s would make the last wait 3 s.
    Once the loop is more than the allowed wait (0.25 s here) behind, the rest are answered 503 at once."""

    async def holds_the_loop(scope: Scope, receive: Receive, send: Send) -> None:
        time.sleep(0.1)  # a read on the loop, as api.deps.Reader runs them
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    limits = settings.model_copy(update={"api_max_queue_wait_seconds": 0.25, "api_max_concurrent_requests": 100})
    answers: list[httpx.Response] = []

    async def thirty_at_once(url: str) -> None:
        async with httpx.AsyncClient(base_url=url, timeout=30, limits=httpx.Limits(max_connections=30)) as http:
            answers.extend(await asyncio.gather(*(http.get("/any") for _ in range(30))))

    with serve(limits, app=ConcurrencyLimit(holds_the_loop, limits, LoopBacklog())) as url:
        asyncio.run(thirty_at_once(url))
    shed = [answer for answer in answers if answer.status_code == 503]
    served = [answer for answer in answers if answer.status_code == 200]
    assert len(served) + len(shed) == 30 and served and shed, [answer.status_code for answer in answers]
    assert all(answer.headers["Retry-After"] == "1" for answer in shed)
    assert shed[0].json()["error"]["code"] == "overloaded"


def test_a_request_is_not_shed_for_the_time_its_own_work_took(settings: Settings) -> None:
    """A process's first request sets things up for a second or more before its read; the probe it queued at
    the door has aged by that much, but the loop was not behind when it came (CI saw it answered 503)."""
    limits = settings.model_copy(update={"api_max_queue_wait_seconds": 0.25})
    backlog = LoopBacklog()

    async def slow_then_reads(scope: Scope, receive: Receive, send: Send) -> None:
        time.sleep(0.4)  # setting up, on the loop, before the read
        status = 503 if backlog.too_far_behind(scope, limits.api_max_queue_wait_seconds) else 200
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    with serve(limits, app=ConcurrencyLimit(slow_then_reads, limits, backlog)) as url, httpx.Client() as http:
        assert [http.get(f"{url}/any").status_code for _ in range(3)] == [200, 200, 200]


def test_the_objects_of_start_up_are_kept_out_of_garbage_collection(settings: Settings) -> None:
    """A full collection walked the ~150,000 objects of start-up: an 83 ms pause inside some request (an idle
    list page's p99 was 151 ms, 26 ms frozen; BENCHMARKS.md). Serving freezes them once started."""
    gc.unfreeze()
    with serve(settings) as url, httpx.Client() as http:
        assert http.get(f"{url}/livez").status_code == 200
        assert gc.get_freeze_count() > 50_000

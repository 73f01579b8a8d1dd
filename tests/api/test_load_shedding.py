"""Beyond capacity the API answers 503 with Retry-After in the error envelope, fast, instead of waiting."""

from __future__ import annotations

import asyncio
import gc
import http.client
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from starlette.types import Receive, Scope, Send

from api.load_shedding import ConcurrencyLimit, LoopBacklog
from core.db import engine_for, write_session_factory
from core.settings import Settings, get_settings
from tests.conftest import (
    ONE_AT_A_TIME,
    TENANT,
    api_client,
    create_api_key,
    serve,
    submit_in_database,
    wait_until,
)
from tuneq.client.http import ApiClient


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
    monkeypatch.setenv("TUNEQ_API_MAX_CONCURRENT_WRITES", "1")  # the size of the writes' pool
    get_settings.cache_clear()
    writes = write_session_factory(small)
    try:
        # A write: reads run on the event loop with a pool of their own (api.deps.Reader).
        unknown = "/finetune/ftjob-000000000000000000000000/cancel"
        with serve(get_settings()) as url, api_client(url, key) as client:
            assert client.post(unknown).status_code == 404
            with writes() as held, held.begin():  # every connection of the pool is busy
                held.execute(text("SELECT 1"))
                response = client.post(unknown)
            assert response.status_code == 503, response.text
            assert response.headers["Retry-After"] == "1"
            assert response.json()["error"]["code"] == "overloaded"
            assert client.post(unknown).status_code == 404  # and serves again once one is free
    finally:
        writes.kw["bind"].dispose()
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


def _answer(connection: http.client.HTTPConnection) -> int:
    """The status of the answer to the request last sent on ``connection``, read through its body."""
    response = connection.getresponse()
    response.read()
    return response.status


@pytest.mark.parametrize(("count", "answered"), [(8, 503), (1, 200)], ids=["eight are shed", "one alone is served"])
def test_requests_that_sat_unread_while_the_loop_was_busy_are_shed_at_the_door_unless_alone(
    settings: Settings, count: int, answered: int
) -> None:
    """Requests that come on open connections while the loop runs a long round of work wait unread in the
    kernel, where no probe of the loop's backlog sees them: they used to be read, started and answered
    after the round, however long it took. The loop's selector knows since when they may have waited
    (api.serving.TimedSelector), and the door sheds them once that is longer than the allowed wait.
    Shedding serves what waited behind them sooner; a request found alone, with nothing in flight (a lone
    poll on a host whose CPU was busy training), has no one behind it, and is served (it used to be shed)."""
    holding, release = threading.Event(), threading.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["path"] == "/hold":
            holding.set()
            release.wait(timeout=30)  # a round of work holding the loop
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})

    limits = settings.model_copy(update={"api_max_queue_wait_seconds": 0.25})
    with serve(limits, app=ConcurrencyLimit(app, limits, LoopBacklog())) as url, ExitStack() as stack:
        host, port = url.removeprefix("http://").split(":")
        connect = lambda: stack.enter_context(closing(http.client.HTTPConnection(host, int(port), timeout=30)))  # noqa: E731
        waiting = [connect() for _ in range(count)]
        for connection in waiting:  # open and served at once: the loop is idle
            connection.request("GET", "/fast")
            assert _answer(connection) == 200
        holder = connect()
        holder.request("GET", "/hold")
        assert holding.wait(timeout=30)
        for connection in waiting:
            connection.request("GET", "/fast")  # sent, not answered: in the kernel, unread while the loop holds
        time.sleep(0.4)  # longer than the allowed wait
        release.set()
        assert _answer(holder) == 200
        assert [_answer(connection) for connection in waiting] == [answered] * count
        for connection in waiting:  # the loop is free again: served at once
            connection.request("GET", "/fast")
            assert _answer(connection) == 200


def test_a_request_sent_after_a_long_round_answered_its_connection_is_not_shed(settings: Settings) -> None:
    """A request that comes on a connection in the last moment of a long round of work is read right after it,
    by a look at the sockets that returns at once; all the selector knows is that it came during the round.
    But a client sends its next request only once its answer came, so the request cannot have waited longer
    than since that answer (the door used to count the whole round and shed it)."""
    limits = settings.model_copy(update={"api_max_queue_wait_seconds": 0.3})

    async def slow_round(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["path"] == "/slow":
            time.sleep(0.5)  # a round of work holding the loop, longer than the allowed wait
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})
        if scope["path"] == "/slow":
            time.sleep(0.15)  # the round goes on after the answer left: the next request comes meanwhile

    with serve(limits, app=ConcurrencyLimit(slow_round, limits, LoopBacklog())) as url:
        host, port = url.removeprefix("http://").split(":")
        with closing(http.client.HTTPConnection(host, int(port), timeout=30)) as connection:
            connection.request("GET", "/slow")
            assert _answer(connection) == 200
            connection.request("GET", "/fast")  # at once: it waits at most the 0.15 s left of the round
            assert _answer(connection) == 200


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


def test_open_event_streams_leave_the_slots_to_other_requests(
    settings: Settings, api_key: str, tiny_model: Path, sample_dataset: Path
) -> None:
    """A request holds its slot until its answer starts, not while the body goes out: with two slots, three
    dashboards following a job used to hold both, and every other request waited, then got 503."""
    job_id = submit_in_database(settings, TENANT, tiny_model, sample_dataset)  # queued: its stream stays open
    two_slots = settings.model_copy(update={"api_max_concurrent_requests": 2, "api_max_queue_wait_seconds": 0.25})
    with serve(two_slots) as url, api_client(url, api_key) as http, ExitStack() as streams:
        following = []  # each stream's line iterator, kept: dropping one closes its stream
        for _ in range(3):
            stream = streams.enter_context(http.stream("GET", f"/finetune/{job_id}/stream"))
            assert stream.status_code == 200
            following.append(stream.iter_lines())
            assert next(following[-1]) == "retry: 2000"
        status = http.get(f"/finetune/{job_id}")
        assert status.status_code == 200, status.text
        assert http.post(f"/finetune/{job_id}/pause").json()["status"] == "paused"


ONE_WRITE_SLOT = {"api_max_concurrent_writes": 1, "api_max_queue_wait_seconds": 0.25}


@dataclass(frozen=True)
class HeldWrite:
    answer: Future[httpx.Response]  # the held submit's, once it went through
    release: Callable[[], None]  # unlocks the table: the held submit goes through and frees its slot


@contextmanager
def _the_write_slot_held(http: httpx.Client, database_url: str, body: dict[str, object]) -> Iterator[HeldWrite]:
    """A submit holding a server's one write slot, waiting inside the database on the locked jobs table
    (reads pass; inserts wait). The lock's connection closes first on the way out, so a failing assertion
    never leaves the held submit (and the pool waiting for it) blocked."""
    with ThreadPoolExecutor(1) as pool, engine_for(database_url).connect() as locker:
        locker.execute(text("LOCK TABLE jobs IN EXCLUSIVE MODE"))
        answer = pool.submit(http.post, "/finetune", json=body)
        wait_until(lambda: _waiting_for_the_jobs_table(database_url), timeout=30, what="submit blocked")
        yield HeldWrite(answer, locker.rollback)


def _waiting_for_the_jobs_table(database_url: str) -> bool:
    waiting = "SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = 'jobs'::regclass"
    with engine_for(database_url).connect() as conn:
        return bool(conn.execute(text(waiting)).scalar_one())


def test_a_write_waits_for_a_write_slot_and_is_shed_if_none_frees_while_reads_go_on(
    settings: Settings, api_key: str, tiny_model: Path, uploaded_file: dict[str, object]
) -> None:
    """One write slot here; the first submit is held inside the database (the jobs table locked), so the
    second waits the allowed 0.25 s for the slot and is answered 503; reads take no write slot."""
    body = {"base_model": str(tiny_model), "training_file": uploaded_file["id"], "hyperparameters": {"n_epochs": 1}}
    with serve(settings.model_copy(update=ONE_WRITE_SLOT)) as url, api_client(url, api_key) as http:
        known = http.post("/finetune", json=body).json()["id"]
        with _the_write_slot_held(http, settings.resolved_database_url, body) as held:
            shed = http.post("/finetune", json=body)
            assert http.get(f"/finetune/{known}").status_code == 200
            held.release()
            assert held.answer.result(timeout=30).status_code == 202
        assert shed.status_code == 503, shed.text
        assert shed.headers["Retry-After"] == "1" and shed.json()["error"]["code"] == "overloaded"
        assert http.post("/finetune", json=body).status_code == 202  # the slot is free again


def test_the_cli_client_sends_a_shed_request_again_after_retry_after(
    settings: Settings, api_key: str, tiny_model: Path, uploaded_file: dict[str, object]
) -> None:
    """A shed request was refused before any work, so the CLI's client waits Retry-After and sends it again:
    a busy service slows `tuneq submit` down instead of failing it. Its wait here releases the write slot."""
    body = {"base_model": str(tiny_model), "training_file": uploaded_file["id"], "hyperparameters": {"n_epochs": 1}}
    waits: list[float] = []
    with (
        serve(settings.model_copy(update=ONE_WRITE_SLOT)) as url,
        api_client(url, api_key) as http,
        _the_write_slot_held(http, settings.resolved_database_url, body) as held,
    ):

        def wait_before_the_next_try(seconds: float) -> None:
            waits.append(seconds)
            held.release()

        with ApiClient(url, api_key, sleep=wait_before_the_next_try) as client:
            job = client.request("POST", "/finetune", json=body)
        assert held.answer.result(timeout=30).status_code == 202
    assert waits and set(waits) == {1.0}, waits  # shed at least once, each time told to wait 1 s
    assert job["status"] == "queued"

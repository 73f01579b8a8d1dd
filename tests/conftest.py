"""Shared fixtures: real PostgreSQL and Redis, a tiny model, the sample dataset.

The suite fails (never skips) when PostgreSQL or Redis cannot be reached: a
green run must mean the real parts were exercised. Point it elsewhere with
TUNEQ_TEST_DATABASE_URL / TUNEQ_TEST_REDIS_URL.

``make test`` runs the suite in parallel under pytest-xdist (``-n 2 --dist
loadgroup``; ``make test PYTEST_WORKERS=0`` runs it in one process). Each xdist
worker is a process of its own with its own PostgreSQL schema (named after its
pid), its own tmp_path tree (data roots, sockets, logs) and ports picked free by
the kernel. Redis databases are numbered, so each worker takes its own, counting
down from the one in TUNEQ_TEST_REDIS_URL (default 15): gw0 uses 15, gw1 14,
gw2 13, ... The tests flush their database, so point TUNEQ_TEST_REDIS_URL at a
number with as many free databases below it as there are workers.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

# No model hub can be reached here: a hub id fails at once instead of after ~45 s of retries. Set before anything
# imports huggingface_hub, which reads it once; subprocesses (workers, the API) inherit it.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import httpx
import psycopg
import pytest
import redis
from sqlalchemy import text

from core.db import engine_for, transaction
from core.migrate import upgrade_database
from core.settings import Settings, get_settings
from tests import trainer_fixtures
from tuneq.processes import Service, start_dispatcher, start_worker
from tuneq.webhook_receiver import WebhookReceiver


def redis_url_of_this_worker(base_url: str, worker: str) -> str:
    """``base_url`` with its database number lowered by the xdist worker's index (gw0 keeps it)."""
    index = int(worker.removeprefix("gw")) if worker.startswith("gw") else 0
    parts = urlsplit(base_url)
    base_db = int(parts.path.strip("/") or 0)
    if index > base_db:
        raise pytest.UsageError(
            f"xdist worker {worker} needs Redis database {base_db} - {index}, below 0: "
            f"give TUNEQ_TEST_REDIS_URL a higher database number or run fewer workers"
        )
    return urlunsplit(parts._replace(path=f"/{base_db - index}"))


PG_BASE_URL = os.environ.get("TUNEQ_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_URL = redis_url_of_this_worker(
    os.environ.get("TUNEQ_TEST_REDIS_URL", "redis://127.0.0.1:6379/15"), os.environ.get("PYTEST_XDIST_WORKER", "")
)
# Every test run gets its own schema, so parallel runs and other users of the database do not collide.
SCHEMA = f"tuneq_test_{os.getpid()}"
PG_URL = f"{PG_BASE_URL}{'&' if '?' in PG_BASE_URL else '?'}options=-csearch_path%3D{SCHEMA}"
TABLES = (
    "gpu_reservations",
    "checkpoints",
    "job_metrics",
    "job_events",
    "jobs",
    "files",
    "workers",
    "api_keys",
    "idempotency_keys",
    "webhook_attempts",
    "webhook_deliveries",
    "webhook_endpoints",
    "webhook_tenant_secrets",
)
# The trainer's fixtures and the gpu marker's hook live apart, so a machine without the service stack can run
# the trainer's tests alone (see tests/trainer_fixtures.py); pytest finds them here by name.
tiny_model = trainer_fixtures.tiny_model
sample_dataset = trainer_fixtures.sample_dataset
TENANT = "acme"  # the tenant of the `client` fixture's key
# Tests that load the whole machine (hundreds of concurrent requests, a fuzzer) or bound a wall-clock time
# all run on one xdist worker, one after another (`--dist loadgroup`), so that none of them overlaps another.
ONE_AT_A_TIME = pytest.mark.xdist_group("one_at_a_time")
TERMINAL = {"succeeded", "failed", "cancelled"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Slow tests first (a stable sort keeps the order otherwise): the xdist workers start on the long
    # ones and end on short ones, instead of one worker running a minutes-long test at the end alone.
    items.sort(key=lambda item: "slow" not in item.keywords)
    trainer_fixtures.pytest_collection_modifyitems(config, items)


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    plain = PG_BASE_URL.replace("postgresql+psycopg://", "postgresql://")
    try:
        with psycopg.connect(plain, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
            conn.execute(f"CREATE SCHEMA {SCHEMA}")
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL is not reachable at {PG_BASE_URL}: {exc}", pytrace=False)
    upgrade_database(PG_URL)
    yield PG_URL
    engine_for(PG_URL).dispose()
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")


@pytest.fixture(scope="session")
def redis_url() -> str:
    try:
        with redis.Redis.from_url(REDIS_URL, socket_connect_timeout=5) as client:
            client.ping()
    except redis.RedisError as exc:
        pytest.fail(f"Redis is not reachable at {REDIS_URL}: {exc}", pytrace=False)
    return REDIS_URL


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture
def clean_db(database_url: str) -> str:
    with engine_for(database_url).begin() as conn:
        conn.execute(text(f"TRUNCATE {', '.join(TABLES)} CASCADE"))
    return database_url


@pytest.fixture
def settings(
    clean_db: str, redis_client: redis.Redis, redis_url: str, tmp_path: Path, tiny_model: Path
) -> Iterator[Settings]:
    """Settings for one test: real services, a fresh data root and a queue of its own."""
    values = {
        "TUNEQ_MODEL_ROOTS": json.dumps([str(tiny_model.parent)]),
        # No hub here: an uncached hub id fails at once instead of after ~45 s of retries.
        "HF_HUB_OFFLINE": "1",
        # Test receivers listen on loopback; tests of the guard turn this off again.
        "TUNEQ_ALLOW_PRIVATE_WEBHOOKS": "true",
        "TUNEQ_DATABASE_URL": clean_db,
        "TUNEQ_REDIS_URL": redis_url,
        "TUNEQ_DATA_ROOT": str(tmp_path / "data"),
        "TUNEQ_QUEUE_NAME": f"test-{uuid.uuid4().hex[:8]}",
        # Webhook retries at test speed: 8 attempts within a few seconds, found within a fifth of a second.
        "TUNEQ_WEBHOOK_RETRY_DELAYS_SECONDS": json.dumps([0.2] * 7),
        "TUNEQ_WEBHOOK_POLL_INTERVAL_SECONDS": "0.1",
        "TUNEQ_WEBHOOK_TIMEOUT_SECONDS": "5",
        # Recovery at test speed: lost workers are noticed in seconds, not minutes.
        "TUNEQ_HEARTBEAT_INTERVAL_SECONDS": "0.5",
        "TUNEQ_HEARTBEAT_STALE_SECONDS": "8",
        "TUNEQ_MAINTENANCE_INTERVAL_SECONDS": "1",
        "TUNEQ_RECONCILE_AFTER_SECONDS": "1",
        "TUNEQ_DATABASE_RETRY_SECONDS": "60",
    }
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    get_settings.cache_clear()
    (tmp_path / "data").mkdir()
    yield get_settings()
    for key, old in saved.items():
        if old is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = old
    get_settings.cache_clear()


# Small enough to train in a few seconds on 2 CPU cores, large enough for the loss to fall clearly.
FAST_HYPERPARAMETERS = {
    "n_epochs": 4,
    "learning_rate": 3e-3,
    "batch_size": 4,
    "max_seq_length": 128,
}


@contextmanager
def serve(settings: Settings, app: Any = None) -> Iterator[str]:
    """The real app served by uvicorn on a free loopback port, in a thread of this process."""
    import threading

    import uvicorn

    from api.main import create_app
    from api.serving import server_options
    from tuneq.processes import free_port

    port = free_port()
    options = server_options(settings)
    config = uvicorn.Config(app or create_app(settings), host="127.0.0.1", port=port, log_level="warning", **options)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "API did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def api_url(settings: Settings) -> Iterator[str]:
    with serve(settings) as url:
        yield url


def create_api_key(settings: Settings, tenant: str) -> str:
    from core.api_keys import create_key

    with transaction(settings.resolved_database_url) as session:
        return create_key(session, tenant, "tests").secret


def api_client(api_url: str, key: str | None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.Client(base_url=api_url, timeout=30, headers=headers)


@pytest.fixture
def api_key(settings: Settings) -> str:
    """A key of tenant ``acme``."""
    return create_api_key(settings, TENANT)


@pytest.fixture
def client(api_url: str, api_key: str) -> Iterator[httpx.Client]:
    """An HTTP client authenticated as tenant ``acme``."""
    with api_client(api_url, api_key) as http:
        yield http


@pytest.fixture
def other(api_url: str, settings: Settings) -> Iterator[httpx.Client]:
    """A client of a second tenant, ``globex``."""
    with api_client(api_url, create_api_key(settings, "globex")) as http:
        yield http


def submit_in_database(
    settings: Settings,
    tenant: str,
    model: Path,
    dataset: Path,
    priority: int = 0,
    webhook_url: str | None = None,
    gpus: int = 1,
    **hyperparameters: Any,
) -> str:
    """Upload ``dataset`` and submit a job through the service layer, without HTTP."""
    from core import files, jobs
    from core.queue import job_queue

    with transaction(settings.resolved_database_url) as session, dataset.open("rb") as handle:
        record = files.store_upload(session, settings, tenant=tenant, filename=dataset.name, stream=handle)
    new = jobs.NewJob(
        str(model), record.id, dict(hyperparameters), priority=priority, webhook_url=webhook_url, gpus=gpus
    )
    with (
        redis.Redis.from_url(str(settings.redis_url)) as connection,
        transaction(settings.resolved_database_url) as session,
    ):
        return jobs.submit_job(session, settings, job_queue(connection, settings), tenant=tenant, new=new).id


@pytest.fixture
def uploaded_file(client: httpx.Client, sample_dataset: Path) -> dict[str, object]:
    with sample_dataset.open("rb") as handle:
        response = client.post("/files", files={"file": ("capitals.jsonl", handle)})
    assert response.status_code == 201, response.text
    body: dict[str, object] = response.json()
    return body


def queue_length(client: redis.Redis, settings: Settings) -> int:
    from core.queue import job_queue

    return job_queue(client, settings).count


def count_rows(database_url: str, table: str) -> int:
    with engine_for(database_url).connect() as conn:
        return int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    hooks = WebhookReceiver().start()
    yield hooks
    hooks.stop()


@pytest.fixture
def worker(settings: Settings, tmp_path: Path) -> Iterator[Service]:
    """A CPU worker (no --gpu: it hides every GPU), so what tests assert holds on CPU and CUDA hosts alike."""
    service = start_worker(tmp_path / "logs")
    yield service
    service.stop()


@pytest.fixture
def dispatcher(settings: Settings, tmp_path: Path) -> Iterator[Service]:
    """A real ``tuneq dispatcher`` process sending this test's webhooks."""
    service = start_dispatcher(tmp_path / "logs")
    yield service
    service.stop()


@contextmanager
def dispatching(settings: Settings, name: str = "test-dispatcher") -> Iterator[None]:
    """The dispatcher loop in a thread of this process, for tests that drive transitions directly."""
    import threading

    from core.webhook_dispatcher import Dispatcher

    stop = threading.Event()
    thread = threading.Thread(target=Dispatcher(settings, name).run, args=(stop,), daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=30)


def wait_until(condition: Callable[[], bool], timeout: float = 300, what: str = "condition") -> None:
    """Poll ``condition`` until it holds; the timeout is only an outer bound for a broken run."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} never held within {timeout}s"
        time.sleep(0.05)


def wait_for_job(
    client: httpx.Client, job_id: str, worker: Service | None, until: Callable[[dict[str, Any]], bool], timeout: float
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job: dict[str, Any] = client.get(f"/finetune/{job_id}").json()
        if until(job):
            return job
        if worker is not None:
            assert worker.process.poll() is None, f"worker died:\n{worker.log_tail()}"
        time.sleep(0.25)
    raise AssertionError(f"{job_id} never got there in {timeout}s; last: {job}\n{worker.log_tail() if worker else ''}")


def wait_for_terminal(
    client: httpx.Client, job_id: str, worker: Service | None, timeout: float = 900
) -> dict[str, Any]:
    return wait_for_job(client, job_id, worker, lambda job: job["status"] in TERMINAL, timeout)

"""Liveness says the process is up; readiness says whether the database and Redis can be reached."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest

from core.settings import Settings
from tests.conftest import api_client, serve
from tests.tcp_proxy import TcpProxy


def _through(proxy: TcpProxy, url: str) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc.replace(f"{parts.hostname}:{parts.port}", f"127.0.0.1:{proxy.port}")
    return urlunsplit(parts._replace(netloc=netloc))


def _proxy_for(url: str) -> TcpProxy:
    parts = urlsplit(url)
    return TcpProxy(parts.hostname or "127.0.0.1", parts.port or 0).start()


@pytest.fixture
def redis_proxy(settings: Settings) -> Iterator[TcpProxy]:
    proxy = _proxy_for(str(settings.redis_url))
    yield proxy
    proxy.cut()


@pytest.fixture
def database_proxy(settings: Settings) -> Iterator[TcpProxy]:
    proxy = _proxy_for(settings.resolved_database_url)
    yield proxy
    proxy.cut()


def _quiet(settings: Settings, **update: object) -> Settings:
    # No reaper/reconciler thread: it would only log the outage these tests cause on purpose.
    return settings.model_copy(update={"run_maintenance_in_api": False, **update})


def test_liveness_and_readiness_are_separate_unauthenticated_endpoints(client: httpx.Client) -> None:
    assert client.get("/livez").json() == {"status": "ok"}
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ok", "checks": {"database": {"status": "ok"}, "redis": {"status": "ok"}}}


def test_redis_down_is_degraded_and_jobs_are_still_accepted(
    settings: Settings, api_key: str, redis_proxy: TcpProxy, sample_dataset: Path
) -> None:
    with (
        serve(_quiet(settings, redis_url=_through(redis_proxy, str(settings.redis_url)))) as url,
        api_client(url, api_key) as http,
    ):
        with sample_dataset.open("rb") as handle:
            file_id = http.post("/files", files={"file": ("capitals.jsonl", handle)}).json()["id"]
        redis_proxy.cut()

        ready = http.get("/readyz")
        assert ready.status_code == 200
        body = ready.json()
        assert body["status"] == "degraded"
        assert body["checks"]["database"] == {"status": "ok"}
        assert body["checks"]["redis"]["status"] == "down"
        assert "redis unreachable" in body["checks"]["redis"]["reason"]
        assert http.get("/livez").status_code == 200

        submitted = http.post("/finetune", json={"base_model": "Qwen/Qwen3-0.6B", "training_file": file_id})
        assert submitted.status_code == 202, submitted.text
        assert submitted.json()["status"] == "queued"


def test_database_down_is_unavailable_with_503_and_recovers(
    settings: Settings, api_key: str, database_proxy: TcpProxy
) -> None:
    proxied = _through(database_proxy, settings.resolved_database_url)
    with serve(_quiet(settings, database_url=proxied, auto_migrate=False)) as url, api_client(url, api_key) as http:
        database_proxy.cut()
        ready = http.get("/readyz")
        assert ready.status_code == 503
        body = ready.json()
        assert body["status"] == "unavailable"
        assert body["checks"]["database"]["status"] == "down"
        assert body["checks"]["redis"] == {"status": "ok"}
        assert http.get("/livez").status_code == 200  # alive: the orchestrator must not restart it

        database_proxy.restore()
        assert http.get("/readyz").json()["status"] == "ok"

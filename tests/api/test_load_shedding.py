"""Beyond capacity the API answers 503 with Retry-After in the error envelope, fast, instead of waiting."""

from __future__ import annotations

import pytest

from core.db import engine_for
from core.settings import Settings, get_settings
from tests.conftest import api_client, create_api_key, serve


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
        with serve(get_settings()) as url, api_client(url, key) as client:
            assert client.get("/finetune").status_code == 200
            with engine_for(small).connect():  # every connection of the pool is busy
                response = client.get("/finetune")
            assert response.status_code == 503, response.text
            assert response.headers["Retry-After"] == "1"
            assert response.json()["error"]["code"] == "overloaded"
            assert client.get("/finetune").status_code == 200  # and serves again once one is free
    finally:
        engine_for(small).dispose()
        get_settings.cache_clear()

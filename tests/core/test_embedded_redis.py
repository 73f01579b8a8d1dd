from __future__ import annotations

import tempfile
from pathlib import Path

import redis

from core.embedded_redis import ensure_embedded_redis


def test_embedded_redis_starts_is_reused_and_stops() -> None:
    # A short path: unix socket paths are limited to ~100 bytes, and pytest's tmp_path can be longer.
    with tempfile.TemporaryDirectory(prefix="tq") as root:
        first = ensure_embedded_redis(Path(root))
        try:
            assert first.process is not None
            with redis.Redis.from_url(first.url) as client:
                client.set("k", "v")
            second = ensure_embedded_redis(Path(root))
            assert second.process is None  # reused, not started twice
            with redis.Redis.from_url(second.url) as client:
                assert client.get("k") == b"v"
        finally:
            first.stop()
        assert first.process.poll() is not None

"""Fill in the embedded defaults (data root, Redis) and hand them to child processes."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from core.embedded_redis import ensure_embedded_redis
from core.settings import Settings, get_settings


@contextmanager
def resolved_settings(settings: Settings | None = None) -> Iterator[Settings]:
    """Settings with an absolute data root and a Redis URL, starting an embedded Redis if none is set.

    The values are exported as TUNEQ_* variables so that every process started
    from here (API, workers, their job processes) sees the same ones. An
    embedded Redis started here is stopped on exit.
    """
    base = settings or get_settings()
    resolved = base.model_copy(update={"data_root": base.data_root.resolve()})
    resolved.data_root.mkdir(parents=True, exist_ok=True)
    embedded = None
    if not resolved.redis_url:
        embedded = ensure_embedded_redis(resolved.data_root)
        resolved = resolved.model_copy(update={"redis_url": embedded.url})
    os.environ["TUNEQ_DATA_ROOT"] = str(resolved.data_root)
    os.environ["TUNEQ_REDIS_URL"] = str(resolved.redis_url)
    if resolved.database_url:
        os.environ["TUNEQ_DATABASE_URL"] = resolved.database_url
    get_settings.cache_clear()
    try:
        yield resolved
    finally:
        if embedded is not None:
            embedded.stop()

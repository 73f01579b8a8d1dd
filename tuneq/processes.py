"""Start and stop the API, worker and webhook dispatcher processes (used by the demo and the tests)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Service:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, then SIGKILL if it does not exit in time; returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return int(self.process.returncode)

    def kill_hard(self) -> None:
        """kill -9 the process and its children (a worker and its job process), as when a host is lost."""
        children = subprocess.run(["pgrep", "-P", str(self.process.pid)], capture_output=True, text=True).stdout
        for pid in [self.process.pid, *map(int, children.split())]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.process.wait()

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def start_tuneq(
    name: str, args: list[str], log_dir: Path, env: dict[str, str] | None = None, cwd: Path | None = None
) -> Service:
    """Run ``python -m tuneq ARGS`` with its output in ``log_dir/NAME.log`` (from ``cwd``'s tuneq, if given)."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "tuneq", *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"},
            cwd=cwd,
        )
    return Service(name, process, log_path)


def start_api(
    log_dir: Path,
    port: int | None = None,
    env: dict[str, str] | None = None,
    name: str = "api",
    cwd: Path | None = None,
) -> tuple[Service, str]:
    port = port or free_port()
    service = start_tuneq(name, ["api", "--host", "127.0.0.1", "--port", str(port)], log_dir, env, cwd)
    base_url = f"http://127.0.0.1:{port}"
    wait_until_healthy(service, base_url)
    return service, base_url


def start_worker(
    log_dir: Path, name: str = "worker", gpu: int | None = None, env: dict[str, str] | None = None
) -> Service:
    args = ["worker"] + (["--gpu", str(gpu)] if gpu is not None else [])
    return start_tuneq(name, args, log_dir, env)


def start_dispatcher(log_dir: Path, name: str = "dispatcher", env: dict[str, str] | None = None) -> Service:
    return start_tuneq(name, ["dispatcher"], log_dir, env)


def wait_until_healthy(service: Service, base_url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if service.process.poll() is not None:
            raise RuntimeError(f"{service.name} exited with {service.process.returncode}:\n{service.log_tail()}")
        try:
            if httpx.get(f"{base_url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{service.name} did not become healthy in {timeout}s:\n{service.log_tail()}")

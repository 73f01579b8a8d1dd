"""`tuneq dev`: one command serves API and worker on embedded stores, and SIGTERM stops everything."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx


def test_dev_serves_api_and_worker_on_embedded_stores_and_stops_all_on_sigterm(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUNEQ_")}
    env["TUNEQ_DATA_ROOT"] = str(tmp_path / "dev")
    with subprocess.Popen(
        [sys.executable, "-m", "tuneq", "dev"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as process:  # leaving the block closes the pipe
        try:
            lines: list[str] = []
            assert process.stdout is not None
            for line in process.stdout:  # ends if the process exits; pytest-timeout bounds a hang
                lines.append(line)
                if line.startswith("export "):
                    break
            assert lines and lines[-1].startswith("export "), "".join(lines)
            variables = dict(part.split("=", 1) for part in lines[-1].split()[1:])
            headers = {"Authorization": f"Bearer {variables['TUNEQ_API_KEY']}"}
            listed = httpx.get(f"{variables['TUNEQ_API_URL']}/finetune", headers=headers, timeout=30)
            assert listed.status_code == 200 and listed.json()["data"] == []
            children = subprocess.run(["pgrep", "-P", str(process.pid)], capture_output=True, text=True).stdout.split()
            assert len(children) >= 2  # the API and the worker

            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=300) == 0
        finally:
            if process.poll() is None:
                process.kill()
    for pid in children:
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()
    assert (tmp_path / "dev" / "tuneq.db").is_file()  # SQLite, not the test PostgreSQL
    assert not (tmp_path / "dev" / "run" / "redis.sock").exists()  # the embedded Redis was shut down

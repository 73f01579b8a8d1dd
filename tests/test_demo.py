"""`make demo`'s command, on embedded defaults: SQLite and a private redis-server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
def test_demo_runs_a_real_fine_tune_on_embedded_defaults(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUNEQ_")}
    root = tmp_path / "demo"
    done = subprocess.run(
        [sys.executable, "-m", "tuneq", "demo", "--data-root", str(root)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "demo succeeded" in output
    assert "webhook received: fine_tuning.job.succeeded" in output
    assert "sample generation: 'The capital of" in output
    assert (root / "tuneq.db").is_file()  # SQLite, not the test PostgreSQL
    assert not (root / "run" / "redis.sock").exists()  # the embedded Redis was shut down
    adapters = list((root / "jobs").glob("ftjob-*/adapter/adapter_model.safetensors"))
    assert len(adapters) == 1

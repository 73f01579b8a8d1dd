"""The `tuneq` client commands, run as a user runs them: a subprocess against a real API and worker."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import FAST_HYPERPARAMETERS
from tuneq.processes import Service


def tuneq(*args: str, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tuneq", *args],
        env={**os.environ, "COLUMNS": "200", **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def json_of(done: subprocess.CompletedProcess[str]) -> Any:
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)


@pytest.mark.slow
def test_cli_uploads_submits_and_follows_a_job_to_success(
    cli_env: dict[str, str], worker: Service, tiny_model: Path, sample_dataset: Path
) -> None:
    uploaded = json_of(tuneq("files", "upload", str(sample_dataset), "--json", env=cli_env))
    assert uploaded["id"].startswith("file-") and uploaded["format"] == "chat"
    assert json_of(tuneq("files", "show", uploaded["id"], "--json", env=cli_env))["id"] == uploaded["id"]
    assert [f["id"] for f in json_of(tuneq("files", "list", "--json", env=cli_env))["data"]] == [uploaded["id"]]

    done = tuneq(
        "submit",
        "--model", str(tiny_model),
        "--training-file", uploaded["id"],
        "--n-epochs", str(FAST_HYPERPARAMETERS["n_epochs"]),
        "--learning-rate", str(FAST_HYPERPARAMETERS["learning_rate"]),
        "--batch-size", str(FAST_HYPERPARAMETERS["batch_size"]),
        "--set", f"max_seq_length={FAST_HYPERPARAMETERS['max_seq_length']}",
        "--lora-r", "8",
        "--follow",
        env=cli_env,
    )  # fmt: skip
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "succeeded" in output and "claimed by worker" in output  # events printed while following
    job_id = output.split("submitted ", 1)[1].split()[0]

    job = json_of(tuneq("status", job_id, "--json", env=cli_env))
    assert job["status"] == "succeeded" and job["hyperparameters"]["lora_r"] == 8
    assert job["progress"]["step"] == job["progress"]["total_steps"] > 0
    listed = json_of(tuneq("list", "--status", "succeeded", "--json", env=cli_env))
    assert [j["id"] for j in listed["data"]] == [job_id]
    events = json_of(tuneq("events", job_id, "--json", env=cli_env))["data"]
    assert events[0]["message"] == "job created" and events[-1]["data"] == {"status": "succeeded"}

    # Following a finished job replays its stream as JSON lines and ends.
    lines = [
        json.loads(line) for line in tuneq("status", job_id, "--follow", "--json", env=cli_env).stdout.splitlines()
    ]
    assert [m["data"]["id"] for m in lines if m["event"] == "event"] == [e["id"] for e in events]
    assert sum(m["event"] == "metric" for m in lines) == job["progress"]["total_steps"]
    assert lines[-1]["event"] == "end"


@pytest.mark.slow
def test_cli_follow_exits_nonzero_with_the_error_when_the_job_fails(
    cli_env: dict[str, str], worker: Service, sample_dataset: Path, tmp_path: Path
) -> None:
    spec = tmp_path / "job.yaml"
    spec.write_text("base_model: tuneq-tests/no-such-model\nhyperparameters:\n  n_epochs: 1\n")
    # A local path as --training-file is uploaded first.
    done = tuneq("submit", "--spec", str(spec), "--training-file", str(sample_dataset), "--follow", env=cli_env)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "uploaded" in done.stdout
    assert "failed" in done.stdout and "model_load_failed" in done.stdout


def test_cli_with_a_bad_key_prints_the_api_message_and_exits_nonzero(cli_env: dict[str, str]) -> None:
    done = tuneq("list", env={**cli_env, "TUNEQ_API_KEY": "tq_not_a_key"}, timeout=60)
    assert done.returncode == 1
    assert done.stderr.startswith("error: ") and "API key" in done.stderr
    assert "Traceback" not in done.stderr


def test_cli_reports_a_missing_job_and_an_unreachable_api(cli_env: dict[str, str]) -> None:
    missing = tuneq("status", "ftjob-nope", env=cli_env, timeout=60)
    assert missing.returncode == 1 and "no fine-tune job with id 'ftjob-nope'" in missing.stderr
    away = tuneq("list", "--api-url", "http://127.0.0.1:9", env=cli_env, timeout=60)
    assert away.returncode == 1 and "cannot reach the tuneq API at http://127.0.0.1:9" in away.stderr


def test_login_saves_url_and_key_owner_only_and_later_commands_use_them(
    api_url: str, api_key: str, tmp_path: Path
) -> None:
    env = {"XDG_CONFIG_HOME": str(tmp_path / "config"), "TUNEQ_API_URL": "", "TUNEQ_API_KEY": ""}
    refused = tuneq("login", "--api-url", api_url, "--api-key", "tq_wrong", env=env, timeout=60)
    assert refused.returncode == 1 and not (tmp_path / "config" / "tuneq" / "config.json").exists()

    done = tuneq("login", "--api-url", api_url, "--api-key", api_key, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    saved = tmp_path / "config" / "tuneq" / "config.json"
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    assert json.loads(saved.read_text()) == {"api_url": api_url, "api_key": api_key}
    assert json_of(tuneq("list", "--json", env=env, timeout=60))["data"] == []

"""Training through the OpenAI-compatible API with the real openai client, a real worker and real HTTP."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import tarfile
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from openai import OpenAI

from tests.api.test_openai_v1 import openai_client
from tuneq.processes import Service

pytestmark = pytest.mark.slow

# FAST_HYPERPARAMETERS in OpenAI's names: 3e-3 is 15 x the 2e-4 "auto" picks for QLoRA.
FAST = {"n_epochs": 4, "batch_size": 4, "learning_rate_multiplier": 15}
TUNEQ = {"max_seq_length": 128}
LONG = {**FAST, "n_epochs": 40}  # hundreds of steps: long enough to be stopped mid-run
PAUSABLE = {**FAST, "n_epochs": 10}  # stopped mid-run too, yet short enough to finish after a resume


@pytest.fixture
def oai(api_url: str, api_key: str) -> OpenAI:
    return openai_client(api_url, api_key)


def _upload(oai: OpenAI, dataset: Path) -> str:
    with dataset.open("rb") as handle:
        return oai.files.create(file=("capitals.jsonl", handle), purpose="fine-tune").id


def _create(oai: OpenAI, model: Path, file_id: str, hyperparameters: dict[str, Any], **extra: Any) -> str:
    return oai.fine_tuning.jobs.create(
        model=str(model),
        training_file=file_id,
        method={"type": "supervised", "supervised": {"hyperparameters": hyperparameters}},
        extra_body={"tuneq": TUNEQ},
        **extra,
    ).id


def _wait(oai: OpenAI, job_id: str, worker: Service, until: Any, timeout: float = 900) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = oai.fine_tuning.jobs.retrieve(job_id)
        if until(job):
            return job
        assert worker.process.poll() is None, f"worker died:\n{worker.log_tail()}"
        time.sleep(0.25)
    raise AssertionError(f"{job_id} never got there; last: {job}\n{worker.log_tail()}")


def _step(job: Any) -> int:
    return int(job.model_extra["tuneq"]["progress"]["step"])


def test_openai_client_trains_a_job_and_downloads_an_adapter_peft_loads(
    oai: OpenAI, api_url: str, api_key: str, worker: Service, tiny_model: Path, sample_dataset: Path, tmp_path: Path
) -> None:
    file_id = _upload(oai, sample_dataset)
    job_id = _create(oai, tiny_model, file_id, FAST, suffix="capitals")
    job = _wait(oai, job_id, worker, lambda j: j.status in {"succeeded", "failed", "cancelled"})
    assert job.status == "succeeded", job.error
    assert job.fine_tuned_model == f"ft:{tiny_model.name}:capitals:{job_id}"
    assert job.trained_tokens and job.trained_tokens > 0 and job.finished_at >= job.created_at
    assert job.hyperparameters.n_epochs == 4 and job.hyperparameters.learning_rate_multiplier == 15
    total = job.model_extra["tuneq"]["progress"]["total_steps"]

    events = list(oai.fine_tuning.jobs.list_events(job_id, limit=7))  # several pages, newest first
    assert events[0].message.startswith("succeeded after") and events[-1].message == "job created"
    metrics = [e for e in events if e.type == "metrics" and e.data["train_loss"] is not None]
    assert [e.data["step"] for e in metrics] == list(range(total, 0, -1))
    assert metrics[0].data["total_steps"] == total and metrics[0].data["train_mean_token_accuracy"] is not None

    checkpoints = list(oai.fine_tuning.jobs.checkpoints.list(job_id, limit=2))
    steps = [c.step_number for c in checkpoints]
    assert steps == sorted(steps, reverse=True) and steps[0] == total and len(steps) == 4  # one per epoch
    assert checkpoints[0].metrics.train_loss is not None
    assert checkpoints[0].fine_tuned_model_checkpoint == f"{job.fine_tuned_model}:ckpt-step-{total}"
    # Retention keeps three; the oldest row stays, marked as gone.
    assert [c.model_extra["deleted"] for c in checkpoints] == [False, False, False, True]

    rows = list(csv.DictReader(io.StringIO(oai.files.content(job.result_files[0]).text)))
    assert [int(r["step"]) for r in rows if r["train_loss"]] == list(range(1, total + 1))

    with httpx.Client(base_url=api_url, headers={"Authorization": f"Bearer {api_key}"}, timeout=60) as http:
        download = http.get(f"/v1/models/{job.fine_tuned_model}/content")
        assert download.status_code == 200, download.text
        assert hashlib.sha256(download.content).hexdigest() == download.headers["x-checksum-sha256"]
        tail = http.get(f"/finetune/{job_id}/adapter", headers={"Range": "bytes=100-"})
        assert tail.status_code == 206 and tail.content == download.content[100:]
        oldest = http.get(f"/v1/fine_tuning/jobs/{job_id}/checkpoints/{checkpoints[-1].id}/content")
        assert oldest.status_code == 404 and "retention" in oldest.json()["error"]["message"]
        latest = http.get(f"/v1/fine_tuning/jobs/{job_id}/checkpoints/{checkpoints[0].id}/content")
        assert latest.status_code == 200 and latest.headers["content-type"] == "application/x-tar"
    with tarfile.open(fileobj=io.BytesIO(download.content)) as tar:
        tar.extractall(tmp_path / "download", filter="data")
    adapter = tmp_path / "download" / "adapter"
    assert {"adapter_config.json", "adapter_model.safetensors", "README.md", "tokenizer.json"} <= {
        p.name for p in adapter.iterdir()
    }
    assert json.loads((adapter / "adapter_config.json").read_text())["base_model_name_or_path"] == job.model

    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    loaded = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(job.model), str(adapter))
    assert loaded.peft_config["default"].r == 16


def test_pause_frees_the_gpu_and_resume_finishes_without_repeating_steps(
    oai: OpenAI, worker: Service, tiny_model: Path, sample_dataset: Path
) -> None:
    file_id = _upload(oai, sample_dataset)
    job_id = _create(oai, tiny_model, file_id, PAUSABLE)
    _wait(oai, job_id, worker, lambda j: j.status == "running" and _step(j) >= 5, 600)
    asked = oai.fine_tuning.jobs.pause(job_id)
    assert asked.status == "running" and asked.model_extra["tuneq"]["pause_requested_at"]
    paused = _wait(oai, job_id, worker, lambda j: j.status == "paused", 30)
    paused_at, cost = _step(paused), paused.model_extra["tuneq"]["cost"]
    assert paused_at < paused.model_extra["tuneq"]["progress"]["total_steps"]
    assert paused.model_extra["tuneq"]["worker_id"] is None

    # The GPU is free: another job runs to the end while the first stays paused, and a third is cancelled.
    other = _create(oai, tiny_model, file_id, {**FAST, "n_epochs": 1})
    assert _wait(oai, other, worker, lambda j: j.status == "succeeded", 600)
    cancelled = _create(oai, tiny_model, file_id, LONG)
    _wait(oai, cancelled, worker, lambda j: j.status == "running" and _step(j) >= 2, 600)
    oai.fine_tuning.jobs.cancel(cancelled)
    assert _wait(oai, cancelled, worker, lambda j: j.status == "cancelled", 30)
    still = oai.fine_tuning.jobs.retrieve(job_id)
    assert still.status == "paused" and still.model_extra["tuneq"]["cost"] == cost  # no cost while paused

    assert oai.fine_tuning.jobs.resume(job_id).status == "queued"
    done = _wait(oai, job_id, worker, lambda j: j.status == "succeeded", 300)
    messages = [e.message for e in oai.fine_tuning.jobs.list_events(job_id, limit=1000) if e.type == "message"]
    assert f"paused; GPU released (checkpoint-{paused_at})" in messages
    assert f"resuming from checkpoint-{paused_at}" in messages
    rows = list(csv.DictReader(io.StringIO(oai.files.content(done.result_files[0]).text)))
    trained = [(int(r["attempt"]), int(r["step"])) for r in rows if r["train_loss"]]
    total = done.model_extra["tuneq"]["progress"]["total_steps"]
    assert [step for _, step in trained] == list(range(1, total + 1))  # not one step trained twice
    assert {attempt for attempt, _ in trained} == {1}  # a pause does not use up an attempt
    assert done.model_extra["tuneq"]["cost"]["gpu_seconds"] > cost["gpu_seconds"]

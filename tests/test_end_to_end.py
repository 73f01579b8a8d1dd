"""The whole path with real parts: uvicorn API, PostgreSQL, Redis, a worker process, training, and a
dispatcher process sending the signed webhook."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from openai import OpenAI
from standardwebhooks import Webhook

from core.settings import Settings
from tests.conftest import FAST_HYPERPARAMETERS, wait_for_terminal
from tuneq.processes import Service
from tuneq.webhook_receiver import WebhookReceiver


@pytest.mark.slow
def test_job_trains_tiny_model_to_success_through_api_queue_and_worker(
    settings: Settings,
    client: httpx.Client,
    worker: Service,
    dispatcher: Service,
    receiver: WebhookReceiver,
    tiny_model: Path,
    uploaded_file: dict[str, Any],
) -> None:
    response = client.post(
        "/finetune",
        json={
            "base_model": str(tiny_model),
            "training_file": uploaded_file["id"],
            "hyperparameters": FAST_HYPERPARAMETERS,
            "webhook_url": receiver.url,
        },
    )
    assert response.status_code == 202, response.text
    job = wait_for_terminal(client, response.json()["id"], worker)

    assert job["status"] == "succeeded", job["error"]
    assert job["progress"]["step"] == job["progress"]["total_steps"] > 0
    assert job["trained_tokens"] > 0
    assert job["cost"]["gpu_seconds"] > 0 and job["cost"]["cost_usd"] > 0
    assert job["environment"] == {"device": "cpu", "device_name": "cpu", "dtype": "float32", "quantization": "nf4"}
    assert job["started_at"] and job["finished_at"] and job["attempt"] == 1
    assert "auto" not in job["hyperparameters"].values()  # stored as resolved
    assert job["hyperparameters"]["gradient_accumulation_steps"] >= 1
    assert job["result"]["final_loss"] == pytest.approx(job["latest_metrics"]["loss"])
    assert job["result"]["samples"] and all(sample["prompt"] for sample in job["result"]["samples"])
    events = [e["message"] for e in client.get(f"/finetune/{job['id']}/events").json()["data"]]
    assert any(message.startswith("auto: batch_size") for message in events)  # the decision is told

    metrics = client.get(f"/finetune/{job['id']}/metrics").json()["data"]
    losses = [m["loss"] for m in metrics if m["loss"] is not None]
    assert len(losses) == job["progress"]["total_steps"]
    assert min(losses[-3:]) < 0.6 * losses[0], losses  # it learned, not just moved
    assert all(m["tokens_per_second"] is None or m["tokens_per_second"] > 0 for m in metrics)
    assert all(m["peak_memory_bytes"] > 0 for m in metrics)

    assert job["adapter"] == "adapter"  # an artifact name, never a server path
    adapter = settings.jobs_dir / job["id"] / job["adapter"]
    assert (adapter / "adapter_model.safetensors").is_file()
    assert (adapter / "adapter_config.json").is_file()
    assert (adapter / "tokenizer.json").is_file()
    _adapter_generates(tiny_model, adapter)

    [hook] = receiver.wait_for(1, timeout=30)
    secret = client.get("/webhook_secret").json()["secret"]
    assert Webhook(secret).verify(hook.raw, hook.headers)["data"] == {
        "id": job["id"],
        "object": "fine_tuning.job",
        "status": "succeeded",
        "adapter": "adapter",
        "error": None,
        "metadata": None,
    }
    event = OpenAI(api_key="unused").webhooks.unwrap(hook.raw, hook.headers, secret=secret)
    assert event.type == "fine_tuning.job.succeeded" and event.id == hook.headers["webhook-id"]
    # Exactly one: the job's only delivery was delivered at its first attempt, so nothing else can follow.
    [delivery] = client.get(f"/finetune/{job['id']}/webhooks").json()["data"]
    assert delivery["status"] == "delivered" and delivery["attempts"] == 1 and len(receiver.attempts) == 1


def _adapter_generates(base: Path, adapter: Path) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(adapter)
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), adapter)
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}], tokenize=False, add_generation_prompt=True
    )
    inputs = tokenizer(prompt, return_tensors="pt")
    with torch.no_grad():
        output = model.generate(**inputs, max_new_tokens=12, do_sample=False)
    text = tokenizer.decode(output[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    assert text.strip(), "the adapter generated nothing"


@pytest.mark.slow
def test_failing_job_is_recorded_and_worker_takes_the_next_job(
    client: httpx.Client,
    worker: Service,
    dispatcher: Service,
    receiver: WebhookReceiver,
    tiny_model: Path,
    uploaded_file: dict[str, Any],
) -> None:
    # This machine is offline: a hub id that is not cached cannot be downloaded.
    bad = client.post(
        "/finetune",
        json={
            "base_model": "tuneq-tests/no-such-model",
            "training_file": uploaded_file["id"],
            "webhook_url": receiver.url,
        },
    ).json()
    good = client.post(
        "/finetune",
        json={
            "base_model": str(tiny_model),
            "training_file": uploaded_file["id"],
            "hyperparameters": {**FAST_HYPERPARAMETERS, "n_epochs": 1},
        },
    ).json()

    failed = wait_for_terminal(client, bad["id"], worker)
    assert failed["status"] == "failed"
    assert failed["error"]["code"] == "model_load_failed"
    assert "tuneq-tests/no-such-model" in failed["error"]["message"]
    assert failed["finished_at"] is not None

    succeeded = wait_for_terminal(client, good["id"], worker)
    assert succeeded["status"] == "succeeded", succeeded["error"]
    assert worker.process.poll() is None

    hooks = receiver.wait_for(1, timeout=30)
    assert hooks[0].body["type"] == "fine_tuning.job.failed"
    assert hooks[0].body["data"]["error"]["code"] == "model_load_failed"
    events = client.get(f"/finetune/{bad['id']}/events").json()["data"]
    assert events[0]["message"] == "job created"
    assert any(e["message"].startswith("failed:") for e in events)

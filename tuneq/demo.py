"""``make demo``: one real fine-tune through API, queue, worker and webhook dispatcher, shown live."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from standardwebhooks import Webhook

from core.api_keys import create_key
from core.db import transaction
from core.settings import Settings, get_settings
from tuneq.processes import Service, start_api, start_dispatcher, start_worker
from tuneq.runtime import resolved_settings
from tuneq.webhook_receiver import WebhookReceiver

TERMINAL = {"succeeded", "failed", "cancelled"}
# Enough for the tiny model to learn every capital (loss ~0.05, samples match the references) in seconds.
DEMO_HYPERPARAMETERS = {
    "n_epochs": 30,
    "learning_rate": 5e-3,
    "batch_size": 4,
    "gradient_accumulation_steps": 1,
    "max_seq_length": 128,
    "lora_r": 32,
    "lora_alpha": 64,
    "lora_dropout": 0.0,
}

console = Console()


def _poll_until_done(client: httpx.Client, job_id: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    last_step = -1
    while time.monotonic() < deadline:
        job: dict[str, Any] = client.get(f"/finetune/{job_id}").raise_for_status().json()
        progress, metrics = job["progress"], job["latest_metrics"]
        if progress["step"] != last_step and metrics:
            last_step = progress["step"]
            console.print(
                f"  step {progress['step']:>3}/{progress['total_steps']}  epoch {progress['epoch']:.2f}  "
                f"loss {metrics['loss']:.3f}  lr {metrics['learning_rate']:.2e}  "
                f"{(metrics['tokens_per_second'] or 0):,.0f} tok/s"
            )
        if job["status"] in TERMINAL:
            return job
        time.sleep(0.3)
    raise TimeoutError(f"job {job_id} did not finish within {timeout:.0f}s")


def _report(client: httpx.Client, job: dict[str, Any], receiver: WebhookReceiver) -> bool:
    metrics = client.get(f"/finetune/{job['id']}/metrics").raise_for_status().json()["data"]
    losses = [m["loss"] for m in metrics if m["loss"] is not None]
    console.rule(f"job {job['id']}: {job['status']}")
    if job["error"]:
        console.print(f"[red]error {job['error']['code']}: {job['error']['message']}")
    if losses:
        console.print(f"loss {losses[0]:.3f} -> {losses[-1]:.3f} over {len(losses)} logged steps")
    env = job["environment"] or {}
    console.print(f"ran on {env.get('device_name')} ({env.get('quantization')}, {env.get('dtype')})")
    console.print(f"trained tokens {job['trained_tokens']:,}")
    console.print(f"cost {job['cost']['gpu_seconds']:.1f} device-seconds = ${job['cost']['cost_usd']:.6f}")
    console.print(f"artifact {job['adapter']!r} of the job: the LoRA adapter, with a model card README.md")
    for sample in (job["result"] or {}).get("samples", [])[:2]:
        console.print(f"sample generation: {sample['completion']!r} (reference: {sample['reference']!r})")
    learned = bool(losses) and losses[-1] < losses[0]
    return job["status"] == "succeeded" and _webhook_arrived_once(client, job, receiver) and learned


def _webhook_arrived_once(client: httpx.Client, job: dict[str, Any], receiver: WebhookReceiver) -> bool:
    """The dispatcher delivered the job's one signed event, and nothing else arrived."""
    hooks = receiver.wait_for(1, timeout=30)
    secret = client.get("/webhook_secret").raise_for_status().json()["secret"]
    for hook in hooks:
        Webhook(secret).verify(hook.raw, hook.headers)  # raises if the signature is wrong
        console.print(
            f"webhook received: {hook.body['type']} (id {hook.headers.get('webhook-id')}, signature verified)"
        )
    deliveries = client.get(f"/finetune/{job['id']}/webhooks").raise_for_status().json()["data"]
    # One delivery, delivered at its first attempt: no second copy can be on its way.
    once = [(d["status"], d["attempts"]) for d in deliveries] == [("delivered", 1)]
    return once and len(receiver.attempts) == 1


def _create_key(settings: Settings) -> str:
    with transaction(settings.resolved_database_url) as session:
        return create_key(session, "demo", "make demo").secret


def run_demo(data_root: Path) -> int:
    shutil.rmtree(data_root, ignore_errors=True)
    os.environ["TUNEQ_DATA_ROOT"] = str(data_root.resolve())
    # The demo's webhook receiver listens on loopback, which real deployments refuse.
    os.environ["TUNEQ_ALLOW_PRIVATE_WEBHOOKS"] = "true"
    get_settings.cache_clear()
    from trainer.sample_data import write_sample_dataset
    from trainer.tiny_model import make_tiny_model

    services: list[Service] = []
    receiver = WebhookReceiver().start()
    with resolved_settings(own_redis=True) as settings:
        try:
            console.print(f"[bold]data root[/] {settings.data_root}   [bold]redis[/] {settings.redis_url}")
            console.print(f"[bold]database[/] {settings.resolved_database_url}")
            model_dir = make_tiny_model(settings.data_root / "models" / "tiny-qwen3")
            dataset = write_sample_dataset(settings.data_root / "samples" / "capitals.jsonl")
            console.print(f"built tiny model {model_dir} and sample dataset {dataset.name}")
            logs = settings.data_root / "logs"
            api, base_url = start_api(logs)
            services.append(api)
            services.append(start_worker(logs))
            services.append(start_dispatcher(logs))
            console.print(f"API on {base_url}, one worker and the webhook dispatcher started (logs in {logs})")
            key = _create_key(settings)
            console.print(f"created API key {key[:12]}… for tenant 'demo' (tuneq keys create --tenant demo)")
            auth = {"Authorization": f"Bearer {key}"}
            with httpx.Client(base_url=base_url, timeout=30, headers=auth) as client, dataset.open("rb") as handle:
                uploaded = client.post("/files", files={"file": (dataset.name, handle)}).raise_for_status().json()
                console.print(f"uploaded {uploaded['id']}: {uploaded['example_count']} {uploaded['format']} examples")
                body = {
                    "base_model": str(model_dir),
                    "training_file": uploaded["id"],
                    "hyperparameters": DEMO_HYPERPARAMETERS,
                    "webhook_url": receiver.url,
                    "metadata": {"purpose": "demo"},
                }
                job = client.post("/finetune", json=body).raise_for_status().json()
                console.print(f"submitted {job['id']} ({job['status']}); training:")
                ok = _report(client, _poll_until_done(client, job["id"], timeout=600), receiver)
        finally:
            for service in reversed(services):
                service.stop()
            receiver.stop()
    console.print("[green]demo succeeded[/]" if ok else "[red]demo failed[/]")
    return 0 if ok else 1

"""`tuneq submit|estimate|status|list|cancel|events`: fine-tune jobs over the HTTP API."""

from __future__ import annotations

import inspect
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from tuneq.client.follow import follow_job, outcome
from tuneq.client.http import ApiClient
from tuneq.client.options import ApiKey, ApiUrl, AsJson, api_client, console, post_job_action, print_json
from tuneq.client.spec import build_request, parse_assignments, read_spec

JobIdArg = Annotated[str, typer.Argument(help="a job id, ftjob-…")]
Follow = Annotated[bool, typer.Option("--follow", "-f", help="stay until the job ends; exit 1 unless it succeeded")]
HP = "Hyperparameters (default: auto or the trainer's default)"


def _hp(help_: str) -> Any:
    return typer.Option(help=help_, rich_help_panel=HP)


def _training_file(client: ApiClient, reference: str | None, as_json: bool) -> str | None:
    """A local JSONL is uploaded first; anything else is passed on as a file id."""
    if reference is None or not Path(reference).is_file():
        return reference
    uploaded = client.upload(Path(reference))
    if not as_json:
        console.print(f"uploaded {reference} as {uploaded['id']} ({uploaded['example_count']} examples)")
    file_id: str = uploaded["id"]
    return file_id


def _summary(job: dict[str, Any]) -> str:
    progress = job["progress"]
    steps = f"{progress['step']}/{progress['total_steps'] or '?'}"
    loss = (job["latest_metrics"] or {}).get("loss")
    text = f"{job['id']}  {job['status']}  {job['base_model']}  step {steps}"
    text += f"  loss {loss:.4f}" if loss is not None else ""
    text += f"  cost ${job['cost']['cost_usd']:.6f}"
    if job["error"]:
        text += f"\nerror {job['error']['code']}: {job['error']['message']}"
    return text


def _finish(client: ApiClient, job_id: str, follow: bool, as_json: bool, job: dict[str, Any]) -> None:
    if not follow:
        if as_json:
            print_json(job)
        else:
            console.print(_summary(job), markup=False)
        return
    final = follow_job(client, job_id, console, as_json)
    code = outcome(final, console) if not as_json else (0 if final.get("status") == "succeeded" else 1)
    raise typer.Exit(code)


def submit(
    model: Annotated[str | None, typer.Option("--model", "-m", help="hub id or model directory")] = None,
    training_file: Annotated[str | None, typer.Option(help="file id, or a local JSONL to upload first")] = None,
    validation_file: Annotated[str | None, typer.Option(help="file id, or a local JSONL to upload first")] = None,
    spec: Annotated[
        Path | None, typer.Option(exists=True, dir_okay=False, help="YAML/JSON body of POST /finetune")
    ] = None,
    n_epochs: Annotated[int | None, _hp("passes over the data")] = None,
    learning_rate: Annotated[float | None, _hp("peak learning rate")] = None,
    batch_size: Annotated[int | None, _hp("examples (packed rows) per device step")] = None,
    gradient_accumulation_steps: Annotated[int | None, _hp("device steps per optimizer step")] = None,
    max_seq_length: Annotated[int | None, _hp("tokens per packed row")] = None,
    lora_r: Annotated[int | None, _hp("LoRA rank")] = None,
    lora_alpha: Annotated[int | None, _hp("LoRA scaling numerator")] = None,
    lora_dropout: Annotated[float | None, _hp("dropout on the LoRA path")] = None,
    warmup_ratio: Annotated[float | None, _hp("share of steps spent warming up")] = None,
    seed: Annotated[int | None, _hp("random seed")] = None,
    quantization: Annotated[str | None, _hp("nf4 (QLoRA) or none")] = None,
    hyperparameter: Annotated[
        list[str] | None, typer.Option("--set", help="any other hyperparameter, NAME=VALUE", rich_help_panel=HP)
    ] = None,
    webhook_url: Annotated[str | None, typer.Option(help="POSTed to when the job ends")] = None,
    priority: Annotated[int | None, typer.Option(help="-100..100, higher runs sooner")] = None,
    gpus: Annotated[int | None, typer.Option(help="GPUs of one host, data-parallel (batch_size is per GPU)")] = None,
    follow: Follow = False,
    api_url: ApiUrl = None,
    api_key: ApiKey = None,
    as_json: AsJson = False,
) -> None:
    """Submit a fine-tune job (flags override --spec)."""
    flags = dict(locals())
    with api_client(api_url, api_key) as client:
        job = client.request("POST", "/finetune", json=_request_body(client, flags))
        if not as_json:
            console.print(f"submitted {job['id']} ({job['status']})", markup=False)
        _finish(client, job["id"], follow, as_json, job)


HYPERPARAMETER_FLAGS = (
    "n_epochs",
    "learning_rate",
    "batch_size",
    "gradient_accumulation_steps",
    "max_seq_length",
    "lora_r",
    "lora_alpha",
    "lora_dropout",
    "warmup_ratio",
    "seed",
    "quantization",
)


def _request_body(client: ApiClient, flags: dict[str, Any]) -> dict[str, Any]:
    """The body of POST /finetune from submit's flags (a local --training-file is uploaded first)."""
    hyperparameters = {name: flags[name] for name in HYPERPARAMETER_FLAGS}
    hyperparameters.update(parse_assignments(flags["hyperparameter"] or []))
    fields = {
        "base_model": flags["model"],
        "training_file": _training_file(client, flags["training_file"], flags["as_json"]),
        "validation_file": _training_file(client, flags["validation_file"], flags["as_json"]),
        "webhook_url": flags["webhook_url"],
        "priority": flags["priority"],
        "gpus": flags["gpus"],
    }
    spec = flags["spec"]
    return build_request(read_spec(spec) if spec else {}, fields, hyperparameters, {})


def _describe_estimate(estimate: dict[str, Any]) -> str:
    tokens, hp, device = estimate["tokens"], estimate["hyperparameters"], estimate["device"]
    minutes, seconds = divmod(round(estimate["seconds"]), 60)
    lines = [
        f"tokens  {tokens['training_tokens']:,} per epoch ({tokens['examples']} examples, {tokens['rows']} rows; "
        f"counted with {tokens['counted_with']})",
        f"steps   {estimate['total_steps']} ({hp['n_epochs']} epochs, batch {hp['batch_size']} x "
        f"accumulation {hp['gradient_accumulation_steps']}, lr {hp['learning_rate']:g})",
        f"time    {minutes}:{seconds:02d} on {device['device']} {device['name']} "
        f"({estimate['throughput']['tokens_per_second']:,.0f} tok/s, {estimate['throughput']['source']})",
        f"cost    ${estimate['cost_usd']:.6f} at ${estimate['price_per_hour']}/h; "
        f"finish ~{estimate['estimated_finish'][:19]} UTC if it starts now",
    ]
    return "\n".join([*lines, *(f"note    {note}" for note in estimate["notes"])])


def estimate(**flags: Any) -> None:
    """Estimate a job before submitting it: tokens, steps, time and cost (the same flags as submit)."""
    with api_client(flags["api_url"], flags["api_key"]) as client:
        result = client.request("POST", "/finetune/estimate", json=_request_body(client, flags))
    if flags["as_json"]:
        print_json(result)
    else:
        console.print(_describe_estimate(result), markup=False)


# The same flags as submit, declared once: typer reads the parameters from this signature.
_submit_flags = inspect.signature(submit, eval_str=True).parameters.values()
setattr(  # noqa: B010 - assigning __signature__ directly does not type-check
    estimate, "__signature__", inspect.Signature([p for p in _submit_flags if p.name != "follow"])
)


def status(
    job_id: JobIdArg, follow: Follow = False, api_url: ApiUrl = None, api_key: ApiKey = None, as_json: AsJson = False
) -> None:
    """A job's status, progress, latest loss and cost (--follow: live until it ends)."""
    with api_client(api_url, api_key) as client:
        _finish(client, job_id, follow, as_json, client.request("GET", f"/finetune/{job_id}"))


def _age(created_at: str) -> str:
    seconds = int((datetime.now(UTC) - datetime.fromisoformat(created_at)).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def list_jobs(
    limit: Annotated[int, typer.Option(min=1, max=100)] = 20,
    status_filter: Annotated[str | None, typer.Option("--status", help="only jobs in this status")] = None,
    api_url: ApiUrl = None,
    api_key: ApiKey = None,
    as_json: AsJson = False,
) -> None:
    """Your jobs, newest first."""
    with api_client(api_url, api_key) as client:
        page = client.request("GET", "/finetune", params={"limit": limit})
    jobs = [job for job in page["data"] if status_filter is None or job["status"] == status_filter]
    if as_json:
        print_json({**page, "data": jobs})
        return
    table = Table("id", "status", "model", "progress", "cost $", "age")
    for job in jobs:
        percent = job["progress"]["percent"]
        table.add_row(
            job["id"],
            job["status"],
            Path(job["base_model"]).name,
            "-" if percent is None else f"{percent:.0f}%",
            f"{job['cost']['cost_usd']:.4f}",
            _age(job["created_at"]),
        )
    console.print(table)


def cancel(job_id: JobIdArg, api_url: ApiUrl = None, api_key: ApiKey = None, as_json: AsJson = False) -> None:
    """Cancel a job: a queued one at once, a running one at its next step."""
    job = post_job_action(job_id, "cancel", api_url, api_key, as_json)
    if job is None:
        return
    if job["status"] == "cancelled":
        console.print(f"{job_id} cancelled")
    else:
        console.print(f"{job_id} {job['status']}; it stops at its next training step")


def events(
    job_id: JobIdArg, follow: Follow = False, api_url: ApiUrl = None, api_key: ApiKey = None, as_json: AsJson = False
) -> None:
    """A job's events in order (--follow: and new ones as they happen, until the job ends)."""
    with api_client(api_url, api_key) as client:
        if follow:
            for message in client.stream(job_id):
                if message.event != "event":
                    continue
                event = message.data
                if as_json:
                    print_json(event)
                else:
                    console.print(f"{event['created_at'][:19]}  {event['level']:<7} {event['message']}", markup=False)
            return
        page = client.request("GET", f"/finetune/{job_id}/events")
    if as_json:
        print_json(page)
        return
    for event in page["data"]:
        console.print(f"{event['created_at'][:19]}  {event['level']:<7} {event['message']}", markup=False)

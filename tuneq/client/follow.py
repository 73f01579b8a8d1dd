"""`--follow`: a job's live progress from its event stream, as a rich progress bar or JSON lines."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn

from tuneq.client.http import ApiClient
from tuneq.client.options import print_json

SUCCEEDED = "succeeded"


def _fmt(value: float | None, pattern: str) -> str:
    return "-" if value is None else format(value, pattern)


def _eta(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}:{secs:02d}"


class ProgressView:
    """One progress bar: step/total, loss, eval loss, tokens/s, ETA and cost so far; events printed above it."""

    def __init__(self, console: Console, job_id: str) -> None:
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}  eval {task.fields[eval_loss]}"),
            TextColumn("{task.fields[tokens_per_second]} tok/s  ETA {task.fields[eta]}  ${task.fields[cost]}"),
            console=console,
        )
        self.task: TaskID = self.progress.add_task(
            f"{job_id} queued", total=None, loss="-", eval_loss="-", tokens_per_second="-", eta="-", cost="0"
        )
        self.job_id = job_id

    def show_job(self, job: dict[str, Any]) -> None:
        progress = job["progress"]
        self.progress.update(
            self.task,
            description=f"{self.job_id} {job['status']}",
            total=progress["total_steps"],
            completed=progress["step"],
            cost=_fmt(job.get("cost_so_far_usd", job["cost"]["cost_usd"]), ".4f"),
        )

    def show_metric(self, metric: dict[str, Any]) -> None:
        update: dict[str, Any] = {"completed": metric["step"], "eta": _eta(metric["eta_seconds"])}
        if metric["loss"] is not None:
            update["loss"] = _fmt(metric["loss"], ".4f")
        if metric["eval_loss"] is not None:
            update["eval_loss"] = _fmt(metric["eval_loss"], ".4f")
        if metric["tokens_per_second"] is not None:
            update["tokens_per_second"] = _fmt(metric["tokens_per_second"], ",.0f")
        self.progress.update(self.task, **update)

    def show_event(self, event: dict[str, Any]) -> None:
        level = "" if event["level"] == "info" else f"{event['level']}: "
        self.progress.console.print(f"{event['created_at'][11:19]} {level}{event['message']}", markup=False)


def follow_job(client: ApiClient, job_id: str, console: Console, as_json: bool) -> dict[str, Any]:
    """Follow a job until it ends; returns its final state."""
    job: dict[str, Any] = {}
    if as_json:
        for message in client.stream(job_id):
            print_json({"event": message.event, "id": message.id, "data": message.data})
            if message.event == "job":
                job = message.data
        return job
    view = ProgressView(console, job_id)
    with view.progress:
        for message in client.stream(job_id):
            if message.event == "job":
                job = message.data
                view.show_job(job)
            elif message.event == "metric":
                view.show_metric(message.data)
            elif message.event == "event":
                view.show_event(message.data)
    return job


def outcome(job: dict[str, Any], console: Console) -> int:
    """Print how the job ended; the exit code: 0 only if it succeeded."""
    status = job.get("status", "unknown")
    if status == SUCCEEDED:
        loss = (job.get("result") or {}).get("final_loss")
        console.print(
            f"[green]{job['id']} succeeded[/]; final loss {_fmt(loss, '.4f')}, cost ${job['cost']['cost_usd']:.6f}"
        )
        return 0
    error = job.get("error") or {}
    console.print(f"[red]{job.get('id')} {status}[/] {error.get('code', '')}: {error.get('message', '')}".rstrip(": "))
    return 1

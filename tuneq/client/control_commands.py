"""`tuneq pause|resume|download`: hold a job, let it go on, fetch what it produced."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from tuneq.client.job_commands import JobIdArg
from tuneq.client.options import ApiKey, ApiUrl, AsJson, api_client, console, post_job_action, print_json


def pause(job_id: JobIdArg, api_url: ApiUrl = None, api_key: ApiKey = None, as_json: AsJson = False) -> None:
    """Pause a job: a queued one at once; a running one checkpoints at its next step and frees its GPU."""
    job = post_job_action(job_id, "pause", api_url, api_key, as_json)
    if job is None:
        return
    if job["status"] == "paused":
        console.print(f"{job_id} paused; `tuneq resume {job_id}` queues it again")
    else:
        console.print(f"{job_id} {job['status']}; it pauses at its next training step")


def resume(job_id: JobIdArg, api_url: ApiUrl = None, api_key: ApiKey = None, as_json: AsJson = False) -> None:
    """Resume a paused job (it continues from its checkpoint), or withdraw a pause not yet taken."""
    job = post_job_action(job_id, "resume", api_url, api_key, as_json)
    if job is not None:
        console.print(f"{job_id} {job['status']}")


def _artifact(job_id: str, merged: bool, checkpoint: str | None) -> tuple[str, str]:
    """(API path, default file name) of what to download."""
    if merged and checkpoint:
        typer.echo("error: --merged and --checkpoint name different archives; pass one of them", err=True)
        raise typer.Exit(2)
    if checkpoint:
        return f"/finetune/{job_id}/checkpoints/{checkpoint}/archive", f"{job_id}-{checkpoint}.tar"
    if merged:
        return f"/finetune/{job_id}/merged", f"{job_id}-merged.tar"
    return f"/finetune/{job_id}/adapter", f"{job_id}-adapter.tar"


def download(
    job_id: JobIdArg,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="where to write the .tar")] = None,
    merged: Annotated[bool, typer.Option("--merged", help="the merged model instead of the adapter")] = False,
    checkpoint: Annotated[str | None, typer.Option("--checkpoint", help="a checkpoint id, ftckpt-…")] = None,
    api_url: ApiUrl = None,
    api_key: ApiKey = None,
    as_json: AsJson = False,
) -> None:
    """Download a job's adapter (or merged model, or a checkpoint) as a .tar; exit 1 unless its SHA-256 matches."""
    path, default_name = _artifact(job_id, merged, checkpoint)
    target = output or Path(default_name)
    # Written beside the target and renamed only once verified: a bad download never takes the real name.
    partial = target.with_name(f"{target.name}.partial")
    try:
        with api_client(api_url, api_key) as client:
            received = client.download(path, partial)
        if not received.verified:
            typer.echo(
                f"error: checksum mismatch for {path}: received {received.bytes:,} bytes with SHA-256 "
                f"{received.sha256}, the server says {received.expected_sha256}; nothing was saved, try again",
                err=True,
            )
            raise typer.Exit(1)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    if as_json:
        print_json({"path": str(target), "bytes": received.bytes, "sha256": received.sha256, "verified": True})
    else:
        console.print(f"saved {target} ({received.bytes:,} bytes, SHA-256 verified)", markup=False)

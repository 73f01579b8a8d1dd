"""Options every client command takes, and the translation of API errors into exit codes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer
from rich.console import Console

from tuneq.client.config import resolve
from tuneq.client.http import ApiClient, ApiError

ApiUrl = Annotated[
    str | None,
    typer.Option("--api-url", envvar="TUNEQ_API_URL", help="the API's base URL (default: saved by login, else :8000)"),
]
ApiKey = Annotated[
    str | None,
    typer.Option("--api-key", envvar="TUNEQ_API_KEY", help="an API key tq_… (default: saved by `tuneq login`)"),
]
AsJson = Annotated[bool, typer.Option("--json", help="print JSON (one object per line when following)")]

console = Console()


@contextmanager
def api_client(api_url: str | None, api_key: str | None) -> Iterator[ApiClient]:
    """A client for the resolved URL and key; an API error ends the command with its message and exit code 1."""
    config = resolve(api_url, api_key)
    try:
        with ApiClient(config.api_url, config.api_key) as client:
            yield client
    except ApiError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(1) from exc


def print_json(value: Any) -> None:
    typer.echo(json.dumps(value, separators=(",", ":")))


def post_job_action(
    job_id: str, action: str, api_url: str | None, api_key: str | None, as_json: bool
) -> dict[str, Any] | None:
    """POST ``/finetune/{id}/{action}``; prints the job as JSON and returns None when ``as_json``, else returns it."""
    with api_client(api_url, api_key) as client:
        job: dict[str, Any] = client.request("POST", f"/finetune/{job_id}/{action}")
    if as_json:
        print_json(job)
        return None
    return job

"""Registers the client commands on the `tuneq` command and holds `tuneq login`."""

from __future__ import annotations

from typing import Annotated

import typer

from tuneq.client import control_commands, job_commands
from tuneq.client.config import ClientConfig, resolve, save_config
from tuneq.client.file_commands import files_app
from tuneq.client.http import ApiClient, ApiError
from tuneq.client.options import ApiUrl, console

CLIENT_PANEL = "Client (talks to the HTTP API)"


def login(
    api_url: ApiUrl = None,
    api_key: Annotated[
        str | None,
        typer.Option("--api-key", envvar="TUNEQ_API_KEY", help="an API key tq_… (asked for when missing)"),
    ] = None,
) -> None:
    """Check an API key against the API and save URL and key for later commands (file mode 0600)."""
    config = resolve(api_url, api_key)
    key = config.api_key or typer.prompt("API key", hide_input=True)
    try:
        with ApiClient(config.api_url, key) as client:
            client.request("GET", "/finetune", params={"limit": 1})
    except ApiError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(1) from exc
    path = save_config(ClientConfig(api_url=config.api_url, api_key=key))
    console.print(f"logged in to {config.api_url}; saved to {path}", markup=False)


def register(app: typer.Typer) -> None:
    app.command(rich_help_panel=CLIENT_PANEL)(login)
    app.add_typer(files_app, name="files", rich_help_panel=CLIENT_PANEL)
    app.command(rich_help_panel=CLIENT_PANEL)(job_commands.submit)
    app.command(rich_help_panel=CLIENT_PANEL)(job_commands.status)
    app.command("list", rich_help_panel=CLIENT_PANEL)(job_commands.list_jobs)
    app.command(rich_help_panel=CLIENT_PANEL)(job_commands.cancel)
    app.command(rich_help_panel=CLIENT_PANEL)(job_commands.events)
    app.command(rich_help_panel=CLIENT_PANEL)(job_commands.estimate)
    app.command(rich_help_panel=CLIENT_PANEL)(control_commands.pause)
    app.command(rich_help_panel=CLIENT_PANEL)(control_commands.resume)
    app.command(rich_help_panel=CLIENT_PANEL)(control_commands.download)

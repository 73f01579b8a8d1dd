"""`tuneq files upload|list|show`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from tuneq.client.options import ApiKey, ApiUrl, AsJson, api_client, console, print_json

files_app = typer.Typer(help="Datasets: upload (validated on arrival), list, show.", no_args_is_help=True)


def _describe(record: dict[str, Any]) -> str:
    return (
        f"{record['id']}  {record['filename']}  {record['format']}  "
        f"{record['example_count']} examples  {record['bytes']:,} bytes"
    )


@files_app.command("upload")
def upload(
    path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="a JSONL dataset")],
    api_url: ApiUrl = None,
    api_key: ApiKey = None,
    as_json: AsJson = False,
) -> None:
    """Upload a JSONL dataset; a bad line is named in the error."""
    with api_client(api_url, api_key) as client:
        record = client.upload(path)
    if as_json:
        print_json(record)
    else:
        console.print(_describe(record), markup=False)


@files_app.command("list")
def list_files(
    limit: Annotated[int, typer.Option(min=1, max=100)] = 20,
    api_url: ApiUrl = None,
    api_key: ApiKey = None,
    as_json: AsJson = False,
) -> None:
    """Your uploaded files, newest first."""
    with api_client(api_url, api_key) as client:
        page = client.request("GET", "/files", params={"limit": limit})
    if as_json:
        print_json(page)
        return
    table = Table("id", "filename", "format", "examples", "bytes", "created")
    for record in page["data"]:
        table.add_row(
            record["id"],
            record["filename"],
            record["format"],
            str(record["example_count"]),
            f"{record['bytes']:,}",
            record["created_at"][:19],
        )
    console.print(table)


@files_app.command("show")
def show(
    file_id: Annotated[str, typer.Argument(help="file-…")],
    api_url: ApiUrl = None,
    api_key: ApiKey = None,
    as_json: AsJson = False,
) -> None:
    """One file's details."""
    with api_client(api_url, api_key) as client:
        record = client.request("GET", f"/files/{file_id}")
    if as_json:
        print_json(record)
    else:
        console.print(_describe(record), markup=False)

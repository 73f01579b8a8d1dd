from __future__ import annotations

import json
from pathlib import Path

import httpx

from core.settings import Settings
from tests.conftest import count_rows


def test_upload_stores_file_and_reports_lines_and_bytes(
    client: httpx.Client, settings: Settings, sample_dataset: Path
) -> None:
    with sample_dataset.open("rb") as handle:
        response = client.post("/files", files={"file": ("capitals.jsonl", handle)})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["id"].startswith("file-")
    assert body["bytes"] == sample_dataset.stat().st_size
    assert body["line_count"] == len(sample_dataset.read_text().splitlines())
    assert body["format"] == "chat"
    stored = settings.files_dir / f"{body['id']}.jsonl"
    assert stored.read_bytes() == sample_dataset.read_bytes()
    assert client.get(f"/files/{body['id']}").json()["sha256"] == body["sha256"]


def _upload(client: httpx.Client, content: bytes) -> httpx.Response:
    return client.post("/files", files={"file": ("bad.jsonl", content)})


def _valid_lines(n: int) -> list[str]:
    row = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
    return [json.dumps(row)] * n


def test_malformed_jsonl_is_refused_naming_the_line_and_nothing_is_kept(
    client: httpx.Client, settings: Settings
) -> None:
    lines = _valid_lines(12)
    lines[6] = '{"messages": [ not json'
    response = _upload(client, "\n".join(lines).encode())
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["line"] == 7
    assert "line 7" in error["message"] and "JSON" in error["message"]
    assert count_rows(settings.resolved_database_url, "files") == 0
    assert list(settings.files_dir.iterdir()) == []


def test_dataset_without_usable_rows_is_refused(client: httpx.Client, settings: Settings) -> None:
    response = _upload(client, b'{"foo": 1}\n{"bar": 2}\n')
    assert response.status_code == 422
    assert "line 1" in response.json()["error"]["message"]
    assert _upload(client, b"").status_code == 422
    too_few = _upload(client, "\n".join(_valid_lines(3)).encode())
    assert too_few.status_code == 422
    assert "at least 10" in too_few.json()["error"]["message"]
    assert count_rows(settings.resolved_database_url, "files") == 0


def test_unknown_file_is_404(client: httpx.Client) -> None:
    response = client.get("/files/file-doesnotexist")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "file_not_found"

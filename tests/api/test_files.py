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


def test_deeply_nested_and_undecodable_lines_are_explained_as_4xx(client: httpx.Client, settings: Settings) -> None:
    nested = _valid_lines(12)
    nested[3] = '{"messages": ' + "[" * 100_000 + "]" * 100_000 + "}"
    deep = _upload(client, "\n".join(nested).encode())
    assert deep.status_code == 422 and "line 4" in deep.json()["error"]["message"]
    assert "nested too deeply" in deep.json()["error"]["message"]
    undecodable = _upload(client, "\n".join(_valid_lines(12)).encode().replace(b"hello", b"h\xffllo", 1))
    message = undecodable.json()["error"]["message"]
    assert undecodable.status_code == 422 and "line 1" in message
    assert "not UTF-8 text" in message and "0xff" in message and "codec" not in message
    assert count_rows(settings.resolved_database_url, "files") == 0


def test_validation_streams_so_memory_stays_flat_for_a_large_file(tmp_path: Path) -> None:
    import subprocess
    import sys

    big = tmp_path / "big.jsonl"
    row = json.dumps(
        {"messages": [{"role": "user", "content": "q" * 200}, {"role": "assistant", "content": "a" * 200}]}
    )
    with big.open("w") as out:
        for _ in range(200_000):  # ~95 MB, ~190 MB as Python objects if held at once
            out.write(row + "\n")
    probe = (
        "import resource, sys; from core.dataset_formats import validate_dataset; from pathlib import Path; "
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss; "
        "summary = validate_dataset(Path(sys.argv[1])); "
        "print(summary.examples, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)"
    )
    examples, grown_kib = subprocess.run(
        [sys.executable, "-c", probe, str(big)], capture_output=True, text=True, check=True
    ).stdout.split()
    assert int(examples) == 200_000
    assert int(grown_kib) < 30 * 1024  # the file is ~95 MB; a streaming check stays near its start-up size

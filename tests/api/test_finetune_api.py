"""Submitting, reading and listing jobs over real HTTP (no worker runs here)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from core.settings import Settings
from tests.conftest import TENANT, api_client, count_rows, queue_length, serve


def _submit(client: httpx.Client, tiny_model: Path, training_file: str, **extra: Any) -> httpx.Response:
    return client.post("/finetune", json={"base_model": str(tiny_model), "training_file": training_file, **extra})


def test_submit_answers_202_with_location_and_enqueues(
    client: httpx.Client,
    settings: Settings,
    redis_client: redis.Redis,
    tiny_model: Path,
    uploaded_file: dict[str, Any],
) -> None:
    response = _submit(client, tiny_model, str(uploaded_file["id"]), metadata={"team": "search"})
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["id"].startswith("ftjob-")
    assert job["status"] == "queued"
    assert response.headers["location"] == f"/finetune/{job['id']}"
    assert job["hyperparameters"]["lora_r"] == 16  # defaults are filled in and stored
    assert job["metadata"] == {"team": "search"}
    assert queue_length(redis_client, settings) == 1
    fetched = client.get(response.headers["location"]).json()
    assert fetched["id"] == job["id"] and fetched["status"] == "queued"
    assert fetched["progress"]["step"] == 0 and fetched["error"] is None


def test_training_file_is_a_file_id_unless_the_operator_allows_paths(
    client: httpx.Client, api_key: str, settings: Settings, tiny_model: Path, sample_dataset: Path
) -> None:
    target = settings.tenant_datasets_dir(TENANT) / "capitals.jsonl"
    target.parent.mkdir(parents=True)
    target.write_bytes(sample_dataset.read_bytes())
    refused = _submit(client, tiny_model, "capitals.jsonl")
    assert refused.status_code == 400 and "file id" in refused.json()["error"]["message"]
    with serve(settings.model_copy(update={"allow_path_datasets": True})) as url, api_client(url, api_key) as open_:
        response = _submit(open_, tiny_model, "capitals.jsonl")
    assert response.status_code == 202, response.text


def test_list_is_newest_first_with_cursor_pagination(
    client: httpx.Client, tiny_model: Path, uploaded_file: dict[str, Any]
) -> None:
    ids = [_submit(client, tiny_model, str(uploaded_file["id"])).json()["id"] for _ in range(5)]
    first = client.get("/finetune", params={"limit": 2}).json()
    assert [j["id"] for j in first["data"]] == ids[::-1][:2]
    assert first["has_more"] is True
    second = client.get("/finetune", params={"limit": 2, "after": first["next_cursor"]}).json()
    third = client.get("/finetune", params={"limit": 2, "after": second["next_cursor"]}).json()
    assert [j["id"] for j in second["data"] + third["data"]] == ids[::-1][2:]
    assert third["has_more"] is False and third["next_cursor"] is None


def test_unknown_job_is_404(client: httpx.Client) -> None:
    for path in ("/finetune/ftjob-nope", "/finetune/ftjob-nope/metrics", "/finetune/ftjob-nope/events"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert response.json()["error"]["code"] == "job_not_found"


BAD_BODIES: list[tuple[str, dict[str, Any], str]] = [
    ("missing base_model", {"base_model": None}, "base_model"),
    ("missing training_file", {"training_file": None}, "training_file"),
    ("unknown field", {"learning_rate": 0.1}, "learning_rate"),
    ("unknown hyperparameter", {"hyperparameters": {"n_epoch": 3}}, "n_epoch"),
    ("wrong type", {"hyperparameters": {"n_epochs": "three"}}, "n_epochs"),
    ("epochs out of range", {"hyperparameters": {"n_epochs": 0}}, "n_epochs"),
    ("negative learning rate", {"hyperparameters": {"learning_rate": -1}}, "learning_rate"),
    ("dropout of 1", {"hyperparameters": {"lora_dropout": 1.0}}, "lora_dropout"),
    ("rank too large", {"hyperparameters": {"lora_r": 100000}}, "lora_r"),
    ("bad quantization", {"hyperparameters": {"quantization": "int3"}}, "quantization"),
    ("bad webhook url", {"webhook_url": "not a url"}, "webhook_url"),
    ("unknown file id", {"training_file": "file-doesnotexist"}, "training_file"),
    ("path reference while paths are off", {"training_file": "../../etc/passwd"}, "file id"),
    ("absolute path while paths are off", {"training_file": "/etc/passwd"}, "file id"),
    ("unknown validation file", {"validation_file": "file-nope"}, "validation_file"),
    ("bad base model id", {"base_model": "not a model id!"}, "base_model"),
    ("base model dir outside the model roots", {"base_model": "/tmp"}, "model root"),
    ("model root without config.json", {"base_model": "{model_root}"}, "config.json"),
    ("relative model path", {"base_model": "./tiny-qwen3"}, "model root"),
    ("NUL in training_file", {"training_file": "file-\x00abc"}, "training_file"),
    ("NUL in base_model", {"base_model": "Qwen/Qwen3\x00"}, "base_model"),
    ("NUL in metadata", {"metadata": {"team": "a\x00b"}}, "metadata.team"),
    ("path component over 255 characters", {"base_model": "/" + "a" * 300 + "/model"}, "base_model"),
    ("too many target modules", {"hyperparameters": {"target_modules": ["q_proj"] * 1000}}, "target_modules"),
    ("cannot fit any GPU", {"hyperparameters": {"batch_size": 1024, "max_seq_length": 131072}}, "cannot fit"),
    ("webhook url too long", {"webhook_url": "https://example.com/" + "a" * 3000}, "webhook_url"),
    ("webhook with a non-http scheme", {"webhook_url": "ftp://example.com/hook"}, "webhook_url"),
    ("no gpus", {"gpus": 0}, "gpus"),
]


@pytest.mark.parametrize(("case", "patch", "expected"), BAD_BODIES, ids=[case for case, _, _ in BAD_BODIES])
def test_bad_request_is_4xx_with_message_and_changes_nothing(
    client: httpx.Client,
    settings: Settings,
    redis_client: redis.Redis,
    tiny_model: Path,
    uploaded_file: dict[str, Any],
    case: str,
    patch: dict[str, Any],
    expected: str,
) -> None:
    body: dict[str, Any] = {"base_model": str(tiny_model), "training_file": uploaded_file["id"], **patch}
    body = {key: value for key, value in body.items() if value is not None}
    if body.get("base_model") == "{model_root}":
        body["base_model"] = str(tiny_model.parent)
    response = client.post("/finetune", json=body)
    assert 400 <= response.status_code < 500, response.text
    error = response.json()["error"]
    assert expected in error["message"] or expected == error["param"], error
    assert count_rows(settings.resolved_database_url, "jobs") == 0
    assert queue_length(redis_client, settings) == 0


def test_malformed_dataset_path_is_refused_with_the_line(
    api_key: str, settings: Settings, redis_client: redis.Redis, tiny_model: Path
) -> None:
    bad = settings.tenant_datasets_dir(TENANT) / "bad.jsonl"
    bad.parent.mkdir(parents=True)
    bad.write_text('{"messages": []}\n' * 12)
    with serve(settings.model_copy(update={"allow_path_datasets": True})) as url, api_client(url, api_key) as client:
        response = _submit(client, tiny_model, "bad.jsonl")
    assert response.status_code == 422
    assert "line 1" in response.json()["error"]["message"]
    assert count_rows(settings.resolved_database_url, "jobs") == 0
    assert queue_length(redis_client, settings) == 0


def test_more_gpus_than_the_operator_allows_is_422_and_creates_nothing(
    api_key: str, settings: Settings, redis_client: redis.Redis, tiny_model: Path, uploaded_file: dict[str, Any]
) -> None:
    with serve(settings.model_copy(update={"max_gpus_per_job": 2})) as url, api_client(url, api_key) as client:
        refused = _submit(client, tiny_model, str(uploaded_file["id"]), gpus=3)
        estimate = client.post(
            "/finetune/estimate",
            json={"base_model": str(tiny_model), "training_file": uploaded_file["id"], "gpus": 3},
        )
        assert count_rows(settings.resolved_database_url, "jobs") == 0
        assert queue_length(redis_client, settings) == 0
        accepted = _submit(client, tiny_model, str(uploaded_file["id"]), gpus=2)
    assert refused.status_code == 422, refused.text
    error = refused.json()["error"]
    assert error["param"] == "gpus" and error["code"] == "value_out_of_range"
    assert "at most 2 GPUs" in error["message"]
    assert estimate.status_code == 422 and estimate.json()["error"]["param"] == "gpus"
    assert accepted.status_code == 202, accepted.text
    job = accepted.json()
    assert job["gpus"] == 2
    assert job["estimate"]["gpus"] == 2 and any("2 GPUs data-parallel" in note for note in job["estimate"]["notes"])


def test_body_that_is_not_json_is_422(client: httpx.Client) -> None:
    response = client.post("/finetune", content=b"{nope", headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert "error" in response.json()

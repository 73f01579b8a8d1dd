"""The trust boundary: API keys, tenant isolation, quotas, idempotency, the error envelope, the webhook guard."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from core.api_keys import list_keys, revoke_key
from core.db import transaction
from core.settings import Settings, TenantLimits
from tests.conftest import TENANT, api_client, count_rows, create_api_key, queue_length, serve


def _upload(client: httpx.Client, dataset: Path) -> dict[str, Any]:
    with dataset.open("rb") as handle:
        response = client.post("/files", files={"file": (dataset.name, handle)})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def _submit(client: httpx.Client, model: Path, file_id: str, **extra: Any) -> httpx.Response:
    return client.post("/finetune", json={"base_model": str(model), "training_file": file_id, **extra})


def test_each_tenant_sees_only_its_own_jobs_and_files(
    client: httpx.Client, other: httpx.Client, tiny_model: Path, sample_dataset: Path
) -> None:
    mine, theirs = _upload(client, sample_dataset), _upload(other, sample_dataset)
    my_job = _submit(client, tiny_model, mine["id"]).json()
    their_job = _submit(other, tiny_model, theirs["id"]).json()
    assert [j["id"] for j in client.get("/finetune").json()["data"]] == [my_job["id"]]
    assert [j["id"] for j in other.get("/finetune").json()["data"]] == [their_job["id"]]
    assert [f["id"] for f in client.get("/files").json()["data"]] == [mine["id"]]
    assert [f["id"] for f in other.get("/files").json()["data"]] == [theirs["id"]]


def test_another_tenants_ids_answer_404_like_ids_that_never_existed(
    client: httpx.Client, other: httpx.Client, tiny_model: Path, sample_dataset: Path
) -> None:
    theirs = _upload(other, sample_dataset)
    job = _submit(other, tiny_model, theirs["id"]).json()
    requests = [
        ("GET", f"/finetune/{job['id']}"),
        ("POST", f"/finetune/{job['id']}/cancel"),
        ("GET", f"/finetune/{job['id']}/metrics"),
        ("GET", f"/finetune/{job['id']}/events"),
        ("GET", f"/files/{theirs['id']}"),
        ("GET", f"/files/{theirs['id']}/content"),
        ("GET", f"/finetune?after={job['id']}"),
    ]
    for method, path in requests:
        response = client.request(method, path)
        never = client.request(method, path.replace(job["id"], "ftjob-never").replace(theirs["id"], "file-never"))
        assert response.status_code == never.status_code == 404, (path, response.text)
        assert response.json()["error"]["type"] == never.json()["error"]["type"] == "not_found_error"
    assert other.get(f"/finetune/{job['id']}").json()["status"] == "queued"  # the cancel did nothing
    assert other.get(f"/files/{theirs['id']}/content").content == sample_dataset.read_bytes()


def test_another_tenants_file_cannot_be_trained_on_by_id_or_by_path(
    client: httpx.Client, other: httpx.Client, api_key: str, settings: Settings, tiny_model: Path, sample_dataset: Path
) -> None:
    theirs = _upload(other, sample_dataset)
    assert _submit(client, tiny_model, theirs["id"]).status_code == 404
    their_dir = settings.tenant_datasets_dir("globex")
    their_dir.mkdir(parents=True)
    (their_dir / "secret.jsonl").write_bytes(sample_dataset.read_bytes())
    paths = [
        "../../globex/datasets/secret.jsonl",
        str(their_dir / "secret.jsonl"),
        theirs["id"].join(["../../../files/", ".jsonl"]),
    ]
    with serve(settings.model_copy(update={"allow_path_datasets": True})) as url, api_client(url, api_key) as mine:
        for path in paths:
            response = _submit(mine, tiny_model, path)
            assert response.status_code == 400, (path, response.text)
            assert "outside this tenant's datasets directory" in response.json()["error"]["message"]
    assert count_rows(settings.resolved_database_url, "jobs") == 0


def test_missing_bad_and_revoked_keys_are_401_with_the_envelope(
    api_url: str, client: httpx.Client, settings: Settings
) -> None:
    for headers in ({}, {"Authorization": "Bearer tq_not-a-real-key-at-all"}, {"Authorization": "Basic abc"}):
        response = httpx.get(f"{api_url}/finetune", headers=headers)
        assert response.status_code == 401, headers
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert response.json()["error"]["type"] == "authentication_error"
    assert client.get("/finetune").status_code == 200
    with transaction(settings.resolved_database_url) as session:
        revoke_key(session, list_keys(session, TENANT)[0].id)
    revoked = client.get("/finetune")  # the very next request
    assert revoked.status_code == 401 and "revoked" in revoked.json()["error"]["message"]
    assert httpx.get(f"{api_url}/healthz").status_code == 200  # health and docs stay open
    assert httpx.get(f"{api_url}/openapi.json").status_code == 200


def test_keys_cli_creates_lists_and_revokes(settings: Settings, api_url: str) -> None:
    def tuneq(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "tuneq", "keys", *args], capture_output=True, text=True)

    created = tuneq("create", "--tenant", "initech", "--name", "ci")
    assert created.returncode == 0, created.stderr
    secret = created.stdout.strip()
    assert secret.startswith("tq_")
    listed = tuneq("list", "--tenant", "initech").stdout
    assert "initech" in listed and "ci" in listed and secret not in listed and secret[:12] in listed
    with api_client(api_url, secret) as client:
        assert client.get("/files").status_code == 200
        key_id = listed.split()[0]
        assert tuneq("revoke", key_id).returncode == 0
        assert client.get("/files").status_code == 401
    assert tuneq("revoke", "key-nope").returncode == 1
    assert tuneq("create", "--tenant", "Not A Tenant").returncode != 0


def test_queued_jobs_quota_is_429_with_retry_after(
    api_key: str, settings: Settings, redis_client: redis.Redis, tiny_model: Path, sample_dataset: Path
) -> None:
    limited = settings.model_copy(update={"tenant_limit_overrides": {TENANT: TenantLimits(max_queued_jobs=2)}})
    with serve(limited) as url, api_client(url, api_key) as client:
        file_id = _upload(client, sample_dataset)["id"]
        assert [_submit(client, tiny_model, file_id).status_code for _ in range(2)] == [202, 202]
        refused = _submit(client, tiny_model, file_id)
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) > 0
    assert "max_queued_jobs" in refused.json()["error"]["message"]
    assert refused.json()["error"]["type"] == "rate_limit_error"
    assert count_rows(settings.resolved_database_url, "jobs") == 2
    assert queue_length(redis_client, settings) == 2


def test_storage_quota_is_429_and_upload_limit_is_413(api_key: str, settings: Settings, sample_dataset: Path) -> None:
    size = sample_dataset.stat().st_size
    stored = TenantLimits(max_stored_bytes=size + 10)
    tiny_uploads = TenantLimits(max_upload_bytes=size - 1)
    limits = {"tenant_limit_overrides": {TENANT: stored, "globex": tiny_uploads}}
    with serve(settings.model_copy(update=limits)) as url:
        with api_client(url, api_key) as client:
            _upload(client, sample_dataset)
            with sample_dataset.open("rb") as handle:
                refused = client.post("/files", files={"file": ("again.jsonl", handle)})
            assert refused.status_code == 429 and "max_stored_bytes" in refused.json()["error"]["message"]
            assert "retry-after" in refused.headers
        with api_client(url, create_api_key(settings, "globex")) as client, sample_dataset.open("rb") as handle:
            too_big = client.post("/files", files={"file": ("big.jsonl", handle)})
        assert too_big.status_code == 413 and "max_upload_bytes" in too_big.json()["error"]["message"]
    assert count_rows(settings.resolved_database_url, "files") == 1
    assert sorted(p.name for p in settings.files_dir.iterdir()) == [f"{_only_file_id(settings)}.jsonl"]


def _only_file_id(settings: Settings) -> str:
    from sqlalchemy import select

    from core.models import File

    with transaction(settings.resolved_database_url) as session:
        return str(session.scalars(select(File.id)).one())


def test_same_idempotency_key_and_body_make_one_job(
    client: httpx.Client, settings: Settings, redis_client: redis.Redis, tiny_model: Path, sample_dataset: Path
) -> None:
    file_id = _upload(client, sample_dataset)["id"]
    body = {"base_model": str(tiny_model), "training_file": file_id}
    first = client.post("/finetune", json=body, headers={"Idempotency-Key": "run-42"})
    again = client.post("/finetune", json=body, headers={"Idempotency-Key": "run-42"})
    assert first.status_code == again.status_code == 202
    assert first.json()["id"] == again.json()["id"]
    assert again.headers["idempotent-replayed"] == "true" and again.headers["location"] == first.headers["location"]
    assert count_rows(settings.resolved_database_url, "jobs") == 1
    assert queue_length(redis_client, settings) == 1
    changed = client.post("/finetune", json={**body, "priority": 5}, headers={"Idempotency-Key": "run-42"})
    assert changed.status_code == 409 and changed.json()["error"]["code"] == "idempotency_key_reused"
    assert count_rows(settings.resolved_database_url, "jobs") == 1


def test_idempotency_keys_are_per_tenant_and_cover_uploads(
    client: httpx.Client, other: httpx.Client, settings: Settings, sample_dataset: Path
) -> None:
    def upload(http: httpx.Client) -> httpx.Response:
        with sample_dataset.open("rb") as handle:
            return http.post("/files", files={"file": ("a.jsonl", handle)}, headers={"Idempotency-Key": "same"})

    mine, mine_again, theirs = upload(client), upload(client), upload(other)
    assert mine.json()["id"] == mine_again.json()["id"] != theirs.json()["id"]
    assert count_rows(settings.resolved_database_url, "files") == 2


def test_unexpected_error_is_a_500_in_the_envelope_without_a_traceback(settings: Settings, api_key: str) -> None:
    from api.main import create_app

    app = create_app(settings)

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("secret internal detail in /srv/tuneq/core/jobs.py line 42")

    with serve(settings, app) as url, api_client(url, api_key) as client:
        response = client.get("/boom")
    assert response.status_code == 500
    error = response.json()["error"]
    assert error["type"] == "server_error" and error["code"] == "internal_error"
    assert "secret" not in response.text and "Traceback" not in response.text and "/srv" not in response.text


def test_unknown_routes_wrong_methods_and_oversize_bodies_use_the_envelope(client: httpx.Client) -> None:
    missing = client.get("/no/such/route")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "route_not_found"
    wrong = client.delete("/finetune")
    assert wrong.status_code == 405 and wrong.json()["error"]["code"] == "method_not_allowed"
    huge = {"base_model": "Qwen/Qwen3-8B", "training_file": "file-x", "hyperparameters": {"target_modules": ["q"]}}
    huge["metadata"] = {"pad": "x" * (2 << 20)}
    declared = client.post("/finetune", json=huge)
    assert declared.status_code == 413 and declared.json()["error"]["code"] == "payload_too_large"

    def chunks() -> Any:
        yield b'{"base_model": "' + b"x" * (2 << 20) + b'"}'

    streamed = client.post("/finetune", content=chunks(), headers={"content-type": "application/json"})
    assert streamed.status_code == 413 and streamed.json()["error"]["code"] == "payload_too_large"


def test_bad_path_and_query_values_are_4xx(client: httpx.Client) -> None:
    for path in ("/finetune/ftjob-%00x", "/files/file-%00", "/finetune/" + "a" * 300, "/files/" + "b" * 300):
        response = client.get(path)
        assert 400 <= response.status_code < 500, path
        assert "error" in response.json()
    beyond = client.get("/finetune/ftjob-x/metrics", params={"after": 2**64})
    assert beyond.status_code == 422 and beyond.json()["error"]["param"] == "after"


SSRF_URLS = [
    "http://127.0.0.1:8000/hook",
    "http://localhost/hook",
    "http://[::1]/hook",
    "http://169.254.169.254/latest/meta-data/",
    "http://2130706433/hook",
    "http://0x7f000001/hook",
    "http://10.0.0.5/hook",
    "http://192.168.1.1/hook",
    "http://[::ffff:127.0.0.1]/hook",
    "http://0.0.0.0/hook",
]


@pytest.mark.parametrize("url", SSRF_URLS)
def test_webhook_urls_to_internal_addresses_are_refused(
    url: str, api_key: str, settings: Settings, tiny_model: Path, sample_dataset: Path
) -> None:
    with serve(settings.model_copy(update={"allow_private_webhooks": False})) as api, api_client(api, api_key) as c:
        response = _submit(c, tiny_model, _upload(c, sample_dataset)["id"], webhook_url=url)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == "webhook_url"
    assert count_rows(settings.resolved_database_url, "jobs") == 0


def test_metadata_address_is_refused_even_where_private_webhooks_are_allowed(
    client: httpx.Client, tiny_model: Path, sample_dataset: Path
) -> None:
    file_id = _upload(client, sample_dataset)["id"]
    response = _submit(client, tiny_model, file_id, webhook_url="http://169.254.169.254/hook")
    assert response.status_code == 400 and "metadata" in response.json()["error"]["message"]


def test_hub_ids_can_be_restricted_by_an_allowlist(api_key: str, settings: Settings, sample_dataset: Path) -> None:
    allowlisted = settings.model_copy(update={"base_model_allowlist": ["Qwen/*"]})
    with serve(allowlisted) as url, api_client(url, api_key) as client:
        file_id = _upload(client, sample_dataset)["id"]
        assert client.post("/finetune", json={"base_model": "Qwen/Qwen3-8B", "training_file": file_id}).is_success
        refused = client.post("/finetune", json={"base_model": "meta-llama/Llama-3-8B", "training_file": file_id})
    assert refused.status_code == 400 and "Qwen/*" in refused.json()["error"]["message"]


def test_open_mode_serves_loopback_without_keys_and_refuses_other_addresses(settings: Settings) -> None:
    from core.settings import AuthMode

    open_settings = settings.model_copy(update={"auth": AuthMode.DISABLED})
    with serve(open_settings) as url:
        assert httpx.get(f"{url}/files").status_code == 200
    refused = subprocess.run(
        [sys.executable, "-m", "tuneq", "api", "--host", "0.0.0.0", "--port", "1"],
        capture_output=True,
        text=True,
        env={**_env(), "TUNEQ_AUTH": "disabled"},
        timeout=120,
    )
    assert refused.returncode == 2 and "only on loopback" in refused.stderr


def _env() -> dict[str, str]:
    import os

    return dict(os.environ)


def test_openapi_lists_the_error_statuses_of_each_route(client: httpx.Client) -> None:
    spec = client.get("/openapi.json").json()
    submit = spec["paths"]["/finetune"]["post"]["responses"]
    assert {"400", "401", "404", "409", "413", "422", "429"} <= set(submit)
    assert "HTTPBearer" in spec["components"]["securitySchemes"]

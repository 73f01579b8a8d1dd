"""The OpenAI-compatible /v1 API, driven by the real ``openai`` client over real HTTP (no worker here)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
import redis
from openai import OpenAI

from core.settings import Settings, TenantLimits
from tests.conftest import FAST_HYPERPARAMETERS, TENANT, queue_length, serve


def openai_client(api_url: str, api_key: str) -> OpenAI:
    # No retries: the client would retry 409 and 429, and these tests want to see them.
    return OpenAI(base_url=f"{api_url}/v1", api_key=api_key, max_retries=0, timeout=30)


@pytest.fixture
def oai(api_url: str, api_key: str) -> Iterator[OpenAI]:
    with openai_client(api_url, api_key) as client:
        yield client


@pytest.fixture
def training_file(oai: OpenAI, sample_dataset: Path) -> str:
    with sample_dataset.open("rb") as handle:
        return oai.files.create(file=("capitals.jsonl", handle), purpose="fine-tune").id


def create_job(oai: OpenAI, model: Path, file_id: str, **extra: Any) -> Any:
    supervised = {"n_epochs": 2, "batch_size": 4, "learning_rate_multiplier": 2}
    return oai.fine_tuning.jobs.create(
        model=str(model),
        training_file=file_id,
        method={"type": "supervised", "supervised": {"hyperparameters": supervised}},
        **extra,
    )


def test_files_upload_list_read_download_and_delete(oai: OpenAI, sample_dataset: Path) -> None:
    with sample_dataset.open("rb") as handle:
        uploaded = oai.files.create(file=("capitals.jsonl", handle), purpose="fine-tune")
    assert uploaded.id.startswith("file-") and uploaded.object == "file" and uploaded.purpose == "fine-tune"
    assert uploaded.bytes == sample_dataset.stat().st_size and isinstance(uploaded.created_at, int)
    assert oai.files.retrieve(uploaded.id).filename == "capitals.jsonl"
    assert [f.id for f in oai.files.list()] == [uploaded.id]
    assert oai.files.content(uploaded.id).content == sample_dataset.read_bytes()
    deleted = oai.files.delete(uploaded.id)
    assert deleted.deleted and deleted.id == uploaded.id
    with pytest.raises(openai.NotFoundError):
        oai.files.retrieve(uploaded.id)


def test_job_create_resolves_openai_and_tuneq_options_and_lists_page_by_page(
    oai: OpenAI, tiny_model: Path, training_file: str
) -> None:
    job = create_job(
        oai,
        tiny_model,
        training_file,
        suffix="capitals",
        seed=7,
        metadata={"team": "geo"},
        extra_body={"tuneq": {"lora_r": 8, "quantization": "none", "priority": 5, "gpus": 2}},
    )
    assert job.id.startswith("ftjob-") and job.object == "fine_tuning.job" and job.status == "queued"
    assert job.model == str(tiny_model) and job.seed == 7 and job.metadata == {"team": "geo"}
    assert job.hyperparameters.n_epochs == 2 and job.hyperparameters.batch_size == 4
    assert job.hyperparameters.learning_rate_multiplier == 2
    native = job.model_extra["tuneq"] if job.model_extra else {}
    assert native["hyperparameters"]["lora_r"] == 8 and native["hyperparameters"]["learning_rate"] == 2e-4
    assert native["priority"] == 5 and native["gpus"] == 2 and job.fine_tuned_model is None and job.result_files == []

    others = [create_job(oai, tiny_model, training_file, metadata={"team": "ops"}).id for _ in range(2)]
    first = oai.fine_tuning.jobs.list(limit=2)
    assert [j.id for j in first.data] == others[::-1] and first.has_more
    second = oai.fine_tuning.jobs.list(limit=2, after=first.data[-1].id)
    assert [j.id for j in second.data] == [job.id] and not second.has_more
    assert [j.id for j in oai.fine_tuning.jobs.list(limit=1)] == [*others[::-1], job.id]  # auto-paginated
    assert [j.id for j in oai.fine_tuning.jobs.list(metadata={"team": "geo"})] == [job.id]
    assert oai.fine_tuning.jobs.retrieve(job.id).id == job.id


def test_pause_holds_a_queued_job_and_resume_queues_it_again(
    oai: OpenAI, settings: Settings, redis_client: redis.Redis, tiny_model: Path, training_file: str
) -> None:
    job = create_job(oai, tiny_model, training_file)
    assert queue_length(redis_client, settings) == 1
    paused = oai.fine_tuning.jobs.pause(job.id)
    assert paused.status == "paused" and queue_length(redis_client, settings) == 0
    with pytest.raises(openai.ConflictError, match="used by unfinished job"):
        oai.files.delete(training_file)  # a paused job still needs its data
    resumed = oai.fine_tuning.jobs.resume(job.id)
    assert resumed.status == "queued" and queue_length(redis_client, settings) == 1
    oai.fine_tuning.jobs.pause(job.id)
    cancelled = oai.fine_tuning.jobs.cancel(job.id)
    assert cancelled.status == "cancelled" and cancelled.finished_at is not None
    messages = [e.message for e in oai.fine_tuning.jobs.list_events(job.id, limit=100)]
    assert messages[:4] == [
        "cancelled while paused",
        "paused while queued",
        "resumed; queued to continue from its checkpoint",
        "paused while queued",
    ]
    assert oai.files.delete(training_file).deleted  # nothing unfinished uses it now


def test_errors_raise_the_matching_openai_exception_classes(
    oai: OpenAI, settings: Settings, api_url: str, api_key: str, tiny_model: Path, training_file: str
) -> None:
    with pytest.raises(openai.BadRequestError) as bad:
        oai.fine_tuning.jobs.create(model=str(tiny_model), training_file=training_file, hyperparameters={"n_epochs": 0})
    assert str(bad.value.param).startswith("hyperparameters.n_epochs") and bad.value.code == "validation_error"
    with pytest.raises(openai.BadRequestError, match=r"tuneq\.lora_r"):
        create_job(oai, tiny_model, training_file, extra_body={"tuneq": {"lora_r": -1}})
    with pytest.raises(openai.BadRequestError, match="purpose"), Path(__file__).open("rb") as handle:
        oai.files.create(file=("x.jsonl", handle), purpose="assistants")
    with pytest.raises(openai.NotFoundError) as missing:
        oai.fine_tuning.jobs.retrieve("ftjob-unknown")
    assert missing.value.code == "job_not_found"
    job = create_job(oai, tiny_model, training_file)
    with pytest.raises(openai.ConflictError, match="only paused jobs can be resumed"):
        oai.fine_tuning.jobs.resume(job.id)
    with pytest.raises(openai.ConflictError):
        oai.files.delete(training_file)
    with openai_client(api_url, "tq_not-a-key") as stranger, pytest.raises(openai.AuthenticationError):
        stranger.fine_tuning.jobs.list()
    limited = settings.model_copy(update={"tenant_limit_overrides": {TENANT: TenantLimits(max_queued_jobs=1)}})
    with serve(limited) as url, openai_client(url, api_key) as client, pytest.raises(openai.RateLimitError):
        create_job(client, tiny_model, training_file)


def test_fast_hyperparameters_are_expressible_through_openai_names() -> None:
    from core.openai_compat import openai_hyperparameters, tuneq_hyperparameters

    mapped = tuneq_hyperparameters({"n_epochs": 4, "batch_size": 4, "learning_rate_multiplier": 15}, {}, None)
    assert mapped["learning_rate"] == pytest.approx(FAST_HYPERPARAMETERS["learning_rate"])
    assert openai_hyperparameters(mapped)["learning_rate_multiplier"] == 15

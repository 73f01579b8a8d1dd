"""Scheduling policy and recovery rules, against the real database and Redis."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import redis
from sqlalchemy import update

from core import jobs
from core.db import transaction, utcnow
from core.models import Job
from core.queue import job_queue, queued_job_ids
from core.recovery import RecoveryReport, recover_lost_jobs, reenqueue_forgotten_jobs
from core.scheduling import claim_next_job
from core.settings import Settings
from core.states import JobStatus
from core.wakeups import wake_jobs_without_message
from tests.conftest import submit_in_database


def _submit(settings: Settings, tiny_model: Path, dataset: Path, tenant: str, priority: int = 0) -> str:
    return submit_in_database(settings, tenant, tiny_model, dataset, priority=priority)


def _finish(settings: Settings, job_id: str) -> None:
    with transaction(settings.resolved_database_url) as session:
        jobs.transition(session, job_id, JobStatus.SUCCEEDED, "done", finished_at=utcnow())


def test_one_tenants_burst_does_not_starve_another(settings: Settings, tiny_model: Path, sample_dataset: Path) -> None:
    burst = [_submit(settings, tiny_model, sample_dataset, "tenant-a") for _ in range(5)]
    late = [_submit(settings, tiny_model, sample_dataset, "tenant-b") for _ in range(2)]
    order, claimed = [], []
    for _ in range(7):  # one GPU: claim, run, finish, repeat
        with transaction(settings.resolved_database_url) as session:
            job = claim_next_job(session, settings, "w1")
        assert job is not None
        order.append(job.tenant)
        claimed.append(job.id)
        _finish(settings, job.id)
    assert order[:4] == ["tenant-a", "tenant-b", "tenant-a", "tenant-b"]
    assert sorted(claimed) == sorted(burst + late)  # every job ran, none twice
    with transaction(settings.resolved_database_url) as session:
        assert claim_next_job(session, settings, "w1") is None


def test_priority_orders_a_tenants_own_jobs(settings: Settings, tiny_model: Path, sample_dataset: Path) -> None:
    low = _submit(settings, tiny_model, sample_dataset, "t", priority=0)
    high = _submit(settings, tiny_model, sample_dataset, "t", priority=10)
    with transaction(settings.resolved_database_url) as session:
        first = claim_next_job(session, settings, "w1")
    assert first is not None and first.id == high
    with transaction(settings.resolved_database_url) as session:
        second = claim_next_job(session, settings, "w2")
    assert second is not None and second.id == low
    with transaction(settings.resolved_database_url) as session:
        assert claim_next_job(session, settings, "w3") is None


def _go_silent(settings: Settings, job_id: str) -> None:
    """The worker ran for a minute, then beat no more for an hour."""
    hour_ago = utcnow() - timedelta(hours=1)
    with transaction(settings.resolved_database_url) as session:
        session.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(started_at=hour_ago - timedelta(minutes=1), heartbeat_at=hour_ago)
        )


def test_lost_job_is_requeued_until_attempts_run_out(
    settings: Settings, tiny_model: Path, sample_dataset: Path
) -> None:
    job_id = _submit(settings, tiny_model, sample_dataset, "t")
    for attempt in range(1, settings.max_attempts + 1):
        with transaction(settings.resolved_database_url) as session:
            claimed = claim_next_job(session, settings, f"w{attempt}")
        assert claimed is not None and claimed.attempt == attempt
        _go_silent(settings, job_id)
        report = RecoveryReport()
        with redis.Redis.from_url(str(settings.redis_url)) as connection:
            recover_lost_jobs(settings, job_queue(connection, settings), report)
        expected_requeue = attempt < settings.max_attempts
        assert report.requeued == ([job_id] if expected_requeue else [])
        assert report.failed == ([] if expected_requeue else [job_id])
    with transaction(settings.resolved_database_url) as session:
        job = jobs.get_job(session, tenant="t", job_id=job_id)
        assert job.status == "failed" and job.error_code == "worker_lost"
        assert job.gpu_seconds > 0 and job.cost_usd > 0  # the lost attempts' time is charged


def test_beating_job_is_left_alone(settings: Settings, tiny_model: Path, sample_dataset: Path) -> None:
    _submit(settings, tiny_model, sample_dataset, "t")
    with transaction(settings.resolved_database_url) as session:
        assert claim_next_job(session, settings, "w1") is not None
    report = RecoveryReport()
    with redis.Redis.from_url(str(settings.redis_url)) as connection:
        recover_lost_jobs(settings, job_queue(connection, settings), report)
    assert report.requeued == [] and report.failed == []


def test_reconciler_enqueues_only_queued_jobs_without_a_message(
    settings: Settings, redis_client: redis.Redis, tiny_model: Path, sample_dataset: Path
) -> None:
    queue = job_queue(redis_client, settings)
    ids = [_submit(settings, tiny_model, sample_dataset, "t") for _ in range(3)]
    with transaction(settings.resolved_database_url) as session:
        session.execute(update(Job).values(updated_at=utcnow() - timedelta(minutes=5)))
    redis_client.flushdb()  # Redis forgot every message
    report = RecoveryReport()
    reenqueue_forgotten_jobs(settings, queue, report)
    assert sorted(report.reenqueued) == sorted(ids)
    second = RecoveryReport()
    reenqueue_forgotten_jobs(settings, queue, second)
    assert second.reenqueued == []  # each has its message now
    assert queued_job_ids(queue) == set(ids)


def test_a_job_that_leaves_the_queue_after_the_reconciler_read_it_keeps_no_message(
    settings: Settings, redis_client: redis.Redis, tiny_model: Path, sample_dataset: Path
) -> None:
    """The reconciler read the job as queued and without a message; it was cancelled (and its messages removed)
    before the reconciler sent one. CI once caught that window: the message outlived the cancelled job."""
    queue = job_queue(redis_client, settings)
    kept, cancelled = (_submit(settings, tiny_model, sample_dataset, "t") for _ in range(2))
    redis_client.flushdb()
    with transaction(settings.resolved_database_url) as session:
        jobs.cancel_job(session, queue, tenant="t", job_id=cancelled)
    read_as_queued = [kept, cancelled]  # what the reconciler's earlier read saw
    assert wake_jobs_without_message(settings, queue, read_as_queued) == [kept]
    assert queue.get_job_ids() and queued_job_ids(queue) == {kept}


def test_machine_failures_are_retried_and_user_errors_are_not() -> None:
    from trainer.errors import DeviceError, InvalidTrainingData, ModelLoadError, OutOfMemory
    from worker.runner import is_retriable

    assert is_retriable(DeviceError("the GPU failed while training: an illegal memory access"))
    assert not is_retriable(DeviceError("ECC errors on every attempt", retriable=False))
    # Decided by type only: text that merely mentions CUDA is not a device failure.
    assert not is_retriable(RuntimeError("CUDA error: an illegal memory access was encountered"))
    assert not is_retriable(OutOfMemory("out of GPU memory; lower batch_size"))
    assert not is_retriable(InvalidTrainingData("line 3: no assistant message"))
    assert not is_retriable(ModelLoadError("cannot load model 'x'"))
    assert not is_retriable(ValueError("a bug"))


def test_running_jobs_quota_keeps_further_jobs_queued_while_others_run(
    settings: Settings, tiny_model: Path, sample_dataset: Path
) -> None:
    from core.settings import TenantLimits

    limited = settings.model_copy(update={"tenant_limit_overrides": {"t": TenantLimits(max_running_jobs=1)}})
    first, second = (_submit(limited, tiny_model, sample_dataset, "t") for _ in range(2))
    other = _submit(limited, tiny_model, sample_dataset, "u")
    with transaction(settings.resolved_database_url) as session:
        claims = [claim_next_job(session, limited, f"w{n}") for n in range(3)]
    assert {job.id for job in claims if job} == {first, other}  # "t" is at its limit: its second job waits
    assert claims[2] is None
    _finish(settings, first)
    with transaction(settings.resolved_database_url) as session:
        freed = claim_next_job(session, limited, "w4")
    assert freed is not None and freed.id == second


def test_device_exceptions_become_typed_failures_at_the_trainer_boundary() -> None:
    import pytest
    import torch

    from trainer.errors import DeviceError, OutOfMemory
    from trainer.train import device_errors_as_failures

    with pytest.raises(DeviceError) as failed, device_errors_as_failures("training"):
        raise torch.AcceleratorError("CUDA error: an illegal memory access was encountered")
    assert failed.value.retriable
    with pytest.raises(OutOfMemory), device_errors_as_failures("training"):
        raise torch.OutOfMemoryError("CUDA out of memory")

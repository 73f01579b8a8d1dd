"""GPU reservations: a job on N GPUs of one host holds them all, and no GPU is ever used twice.

Claims are driven directly through the service layer against real PostgreSQL and Redis; the
workers here are only ids and GPU sets, as a worker parent passes them.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import redis
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from core import gpu_reservations, jobs
from core.db import transaction, utcnow
from core.gpu_reservations import WorkerGpus
from core.models import GpuReservation, Job
from core.queue import job_queue, queued_job_ids
from core.recovery import run_recovery
from core.scheduling import claim_next_job, wake_waiting_jobs
from core.settings import Settings
from core.states import JobStatus
from tests.conftest import submit_in_database

HOST = "gpu-host-a"


def worker(gpu: int, host_gpus: tuple[int, ...] = (0, 1, 2)) -> tuple[str, WorkerGpus]:
    """The id and GPU set of the worker pinned to ``gpu`` on HOST."""
    return f"{HOST}.{gpu}", WorkerGpus(HOST, gpu, host_gpus)


def claim(settings: Settings, gpu: int, host_gpus: tuple[int, ...] = (0, 1, 2)) -> str | None:
    """The id of the job the worker of ``gpu`` claims, if any."""
    worker_id, gpus = worker(gpu, host_gpus)
    with transaction(settings.resolved_database_url) as session:
        job = claim_next_job(session, settings, worker_id, gpus)
        return job.id if job is not None else None


def reservations(settings: Settings) -> dict[int, str]:
    with transaction(settings.resolved_database_url) as session:
        return {row.gpu_index: row.job_id for row in session.scalars(select(GpuReservation))}


def status(settings: Settings, job_id: str) -> str:
    with transaction(settings.resolved_database_url) as session:
        job = session.get(Job, job_id)
        assert job is not None
        return job.status


def test_a_gpu_cannot_be_reserved_twice(settings: Settings, tiny_model: Path, sample_dataset: Path) -> None:
    first, second = (submit_in_database(settings, "t", tiny_model, sample_dataset) for _ in range(2))
    with transaction(settings.resolved_database_url) as session:
        gpu_reservations.reserve(session, HOST, [0, 1], first, f"{HOST}.0")
    with pytest.raises(IntegrityError), transaction(settings.resolved_database_url) as session:
        gpu_reservations.reserve(session, HOST, [1], second, f"{HOST}.1")
    assert reservations(settings) == {0: first, 1: first}  # the loser's whole transaction rolled back


def test_a_worker_whose_gpu_is_lent_claims_nothing_while_another_gpu_of_the_host_serves_one_gpu_jobs(
    settings: Settings, tiny_model: Path, sample_dataset: Path
) -> None:
    big = submit_in_database(settings, "a", tiny_model, sample_dataset, gpus=2)
    small = submit_in_database(settings, "b", tiny_model, sample_dataset)

    assert claim(settings, 0) == big
    assert reservations(settings) == {0: big, 1: big}  # its own GPU and the lowest free other

    assert claim(settings, 1) is None  # GPU 1 is lent to the big job
    assert status(settings, small) == JobStatus.QUEUED
    assert claim(settings, 2) == small
    assert reservations(settings) == {0: big, 1: big, 2: small}


def test_a_two_gpu_job_waits_while_one_gpu_is_free_and_runs_once_two_are(
    settings: Settings, redis_client: redis.Redis, tiny_model: Path, sample_dataset: Path
) -> None:
    host = (0, 1)
    running = submit_in_database(settings, "a", tiny_model, sample_dataset)
    assert claim(settings, 1, host) == running
    big = submit_in_database(settings, "b", tiny_model, sample_dataset, gpus=2)
    redis_client.flushdb()  # the big job's message has been spent on a claim that passed it over

    assert claim(settings, 0, host) is None  # one GPU free: the big job is left queued, not failed
    assert status(settings, big) == JobStatus.QUEUED

    queue = job_queue(redis_client, settings)
    worker_id, _ = worker(1, host)
    with transaction(settings.resolved_database_url) as session:  # what the worker parent does after its job
        jobs.finish_job(session, running, JobStatus.SUCCEEDED, "done", owner=worker_id)
        freed = gpu_reservations.release(session, running, worker_id)
        wake_waiting_jobs(session, settings, queue, count=freed)
    assert queued_job_ids(queue) == {big}  # woken without an operator or the reconciler

    assert claim(settings, 0, host) == big
    assert reservations(settings) == {0: big, 1: big}


def test_a_worker_without_a_gpu_takes_only_one_gpu_jobs(
    settings: Settings, tiny_model: Path, sample_dataset: Path
) -> None:
    big = submit_in_database(settings, "a", tiny_model, sample_dataset, gpus=2)
    with transaction(settings.resolved_database_url) as session:
        assert claim_next_job(session, settings, "cpu-worker") is None
    assert status(settings, big) == JobStatus.QUEUED and reservations(settings) == {}


def test_maintenance_frees_the_gpus_of_a_job_taken_from_a_lost_worker_and_keeps_live_ones(
    settings: Settings, redis_client: redis.Redis, tiny_model: Path, sample_dataset: Path
) -> None:
    lost = submit_in_database(settings, "a", tiny_model, sample_dataset, gpus=2)
    live = submit_in_database(settings, "b", tiny_model, sample_dataset)
    assert claim(settings, 0) == lost
    assert claim(settings, 2) == live
    with transaction(settings.resolved_database_url) as session:  # the host of GPU 0's worker went silent
        hour_ago = utcnow() - timedelta(hours=1)
        session.execute(update(Job).where(Job.id == lost).values(started_at=hour_ago, heartbeat_at=hour_ago))

    queue = job_queue(redis_client, settings)
    report = run_recovery(settings, queue)

    assert report.requeued == [lost] and report.released_gpus == 2
    assert reservations(settings) == {2: live}
    assert run_recovery(settings, queue).released_gpus == 0  # idempotent
    assert claim(settings, 1) == lost  # GPUs 0 and 1 are free again: the requeued job runs

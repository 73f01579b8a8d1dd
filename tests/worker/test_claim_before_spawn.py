"""The worker parent claims before it spawns: messages with nothing to claim cost no process.

The worker runs in this test process in burst mode (RQ's own deterministic
mode); each job process it spawns is real and really trains.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import redis
from rq import Queue
from rq.job import Job as RQJob
from sqlalchemy import select, update

from core import jobs
from core.db import transaction, utcnow
from core.models import Job, JobEvent
from core.queue import enqueue_job, job_queue
from core.recovery import RecoveryReport, reenqueue_forgotten_jobs
from core.scheduling import claim_next_job
from core.settings import Settings, get_settings
from core.states import JobStatus
from tests.conftest import FAST_HYPERPARAMETERS, submit_in_database
from worker.claiming import Device
from worker.process import TuneqWorker, build_worker

ONE_EPOCH = {**FAST_HYPERPARAMETERS, "n_epochs": 1}
WORKER_ID = "test-host.1.cpu"


@pytest.fixture
def counted_worker(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[TuneqWorker, list[str]]]:
    """A real worker whose every job process spawn is recorded (job id handed to it)."""
    monkeypatch.setenv("TUNEQ_WORKER_ID", WORKER_ID)  # what run_worker exports for its job processes
    get_settings.cache_clear()
    spawned: list[str] = []
    yield counting_spawns(build_worker(get_settings(), WORKER_ID, Device.of(None)), spawned), spawned
    get_settings.cache_clear()


def counting_spawns(worker: TuneqWorker, spawned: list[str]) -> TuneqWorker:
    """Record the job id handed to each job process ``worker`` really spawns."""
    spawn = worker.fork_work_horse

    def counting_spawn(job: RQJob, queue: Queue) -> None:
        spawned.append(str(job.args[0]))
        spawn(job, queue)

    worker.fork_work_horse = counting_spawn  # type: ignore[method-assign]
    return worker


def _two_tenants_jobs(settings: Settings, tiny_model: Path, sample_dataset: Path) -> tuple[str, str, str]:
    """Messages arrive a1, a2, b1; fairness claims a1, b1, a2: the second message serves another job."""
    a1, a2 = (submit_in_database(settings, "a", tiny_model, sample_dataset, **ONE_EPOCH) for _ in range(2))
    return a1, a2, submit_in_database(settings, "b", tiny_model, sample_dataset, **ONE_EPOCH)


def _assert_each_ran_once(settings: Settings, job_ids: tuple[str, ...]) -> None:
    with transaction(settings.resolved_database_url) as session:
        for job_id in job_ids:
            job = session.get(Job, job_id)
            assert job is not None and job.status == JobStatus.SUCCEEDED and job.attempt == 1, job_id
    assert [_claim_events(settings, job_id) for job_id in job_ids] == [1] * len(job_ids)


def _claim_events(settings: Settings, job_id: str) -> int:
    with transaction(settings.resolved_database_url) as session:
        messages = session.scalars(select(JobEvent.message).where(JobEvent.job_id == job_id)).all()
    return sum(message.startswith("claimed by") for message in messages)


def test_messages_for_claimed_or_finished_jobs_are_dropped_without_a_job_process(
    settings: Settings,
    redis_client: redis.Redis,
    counted_worker: tuple[TuneqWorker, list[str]],
    tiny_model: Path,
    sample_dataset: Path,
) -> None:
    taken = submit_in_database(settings, "t", tiny_model, sample_dataset)
    done = submit_in_database(settings, "t", tiny_model, sample_dataset)
    with transaction(settings.resolved_database_url) as session:
        assert claim_next_job(session, settings, "another-worker") is not None
        assert claim_next_job(session, settings, "another-worker") is not None
    with transaction(settings.resolved_database_url) as session:
        jobs.finish_job(session, done, JobStatus.SUCCEEDED, "done", owner="another-worker")
    queue = job_queue(redis_client, settings)
    assert queue.count == 2  # both messages still there, neither has anything to claim

    worker, spawned = counted_worker
    worker.work(burst=True)

    assert spawned == []  # no job process for either message
    assert queue.count == 0 and redis_client.llen(queue.intermediate_queue_key) == 0
    with transaction(settings.resolved_database_url) as session:
        still = session.get(Job, taken)
        assert still is not None and still.status == JobStatus.RUNNING and still.worker_id == "another-worker"


@pytest.mark.slow
def test_after_out_of_order_claims_and_a_redis_flush_every_queued_job_runs_exactly_once(
    settings: Settings,
    redis_client: redis.Redis,
    counted_worker: tuple[TuneqWorker, list[str]],
    tiny_model: Path,
    sample_dataset: Path,
) -> None:
    a1, a2, b1 = _two_tenants_jobs(settings, tiny_model, sample_dataset)
    worker, spawned = counted_worker
    worker.work(burst=True, max_jobs=2)
    assert spawned == [a1, b1]  # each job process was handed exactly the job its parent claimed

    redis_client.flushdb()  # Redis forgets every message, including a2's
    with transaction(settings.resolved_database_url) as session:  # the reconciler's wait has passed
        session.execute(update(Job).where(Job.status == "queued").values(updated_at=utcnow() - timedelta(minutes=5)))
    report = RecoveryReport()
    reenqueue_forgotten_jobs(settings, job_queue(redis_client, settings), report)
    assert report.reenqueued == [a2]

    counting_spawns(build_worker(get_settings(), WORKER_ID, Device.of(None)), spawned).work(burst=True)

    assert spawned == [a1, b1, a2]
    _assert_each_ran_once(settings, (a1, a2, b1))


def test_claimed_job_is_running_before_its_job_process_starts(
    settings: Settings,
    redis_client: redis.Redis,
    counted_worker: tuple[TuneqWorker, list[str]],
    tiny_model: Path,
    sample_dataset: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    job_id = submit_in_database(settings, "t", tiny_model, sample_dataset)
    worker, _ = counted_worker
    seen: list[tuple[str, str | None]] = []

    def inspect_instead_of_spawning(job: RQJob, queue: Queue) -> None:
        with transaction(settings.resolved_database_url) as session:
            row = session.get(Job, str(job.args[0]))
            assert row is not None
            seen.append((row.status, row.worker_id))
        raise RuntimeError("spawn failed")  # as if posix_spawn failed: the parent must hand the job back

    monkeypatch.setattr(worker, "fork_work_horse", inspect_instead_of_spawning)
    worker.work(burst=True)

    assert seen == [(JobStatus.RUNNING, WORKER_ID)]
    with transaction(settings.resolved_database_url) as session:
        job = session.get(Job, job_id)
        assert job is not None and job.status == JobStatus.QUEUED and job.worker_id is None
        assert any("job process died; requeued" in m for m in session.scalars(select(JobEvent.message)))


@pytest.mark.slow
def test_a_second_message_for_a_job_leaves_the_message_a_worker_holds_alone(
    settings: Settings,
    redis_client: redis.Redis,
    counted_worker: tuple[TuneqWorker, list[str]],
    tiny_model: Path,
    sample_dataset: Path,
) -> None:
    # The second message serves b1 and is rewritten to name it, leaving a2 without a message. The reconciler
    # gives a2 a new one just before the job process starts: it must not overwrite (or, dropped, delete) the
    # message the job process is about to read.
    a1, a2, b1 = _two_tenants_jobs(settings, tiny_model, sample_dataset)
    worker, spawned = counted_worker
    queue = job_queue(redis_client, settings)
    spawn = worker.fork_work_horse

    def reconcile_then_spawn(job: RQJob, queue_: Queue) -> None:
        if job.args[0] == b1:
            enqueue_job(queue, a2, settings)
        spawn(job, queue_)

    worker.fork_work_horse = reconcile_then_spawn  # type: ignore[method-assign]
    worker.work(burst=True, max_jobs=2)
    counting_spawns(build_worker(get_settings(), WORKER_ID, Device.of(None)), spawned).work(burst=True)

    assert spawned == [a1, b1, a2]
    _assert_each_ran_once(settings, (a1, a2, b1))
    assert queue.count == 0

"""One clock and maintenance safe to run anywhere: real processes, real PostgreSQL and Redis."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
from datetime import timedelta
from pathlib import Path

import pytest
import redis
from sqlalchemy import select, text, update

from core.db import engine_for, transaction, utcnow
from core.models import Job, JobEvent
from core.queue import job_queue, queued_job_ids
from core.recovery import RecoveryReport, maintenance_turn, recover_lost_jobs, run_recovery
from core.scheduling import claim_next_job
from core.settings import Settings
from tests.conftest import submit_in_database


@pytest.mark.parametrize("skew_minutes", [5, -5], ids=["fast", "slow"])
def test_worker_host_with_a_skewed_clock_is_not_reaped_while_it_beats(
    settings: Settings, redis_client: redis.Redis, tiny_model: Path, sample_dataset: Path, skew_minutes: int
) -> None:
    job_id = submit_in_database(settings, "t", tiny_model, sample_dataset)
    with subprocess.Popen(
        [sys.executable, "-m", "tests.worker.skewed_host", str(skew_minutes * 60)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as host:  # leaving the block closes the pipes
        assert host.stdin is not None and host.stdout is not None
        try:
            assert host.stdout.readline().strip() == f"claimed {job_id}"
            queue = job_queue(redis_client, settings)
            for _ in range(3):
                host.stdin.write("beat\n")
                host.stdin.flush()
                assert host.stdout.readline().strip() == "beat"
                report = RecoveryReport()
                recover_lost_jobs(settings, queue, report)
                assert report.requeued == [] and report.failed == []
        finally:
            host.stdin.close()
            host.wait(timeout=30)
    assert host.returncode == 0
    with transaction(settings.resolved_database_url) as session:
        job = session.get(Job, job_id)
        assert job is not None and job.status == "running" and job.worker_id == "skewed-host"


def test_two_maintenance_loops_at_once_requeue_a_lost_job_once(
    settings: Settings, redis_client: redis.Redis, tiny_model: Path, sample_dataset: Path
) -> None:
    job_id = submit_in_database(settings, "t", tiny_model, sample_dataset)
    with transaction(settings.resolved_database_url) as session:
        assert claim_next_job(session, settings, "silent-worker") is not None
        hour_ago = utcnow() - timedelta(hours=1)
        session.execute(update(Job).values(started_at=hour_ago, heartbeat_at=hour_ago, updated_at=hour_ago))
    redis_client.flushdb()  # its message is long gone, as after a run
    start = threading.Barrier(2)
    reports: list[RecoveryReport] = []

    def maintenance_loop() -> None:
        with redis.Redis.from_url(str(settings.redis_url)) as connection:
            queue = job_queue(connection, settings)
            start.wait(timeout=30)
            for _ in range(5):
                reports.append(run_recovery(settings, queue))

    loops = [threading.Thread(target=maintenance_loop) for _ in range(2)]
    for loop in loops:
        loop.start()
    for loop in loops:
        loop.join(timeout=120)
    assert [job for report in reports for job in report.requeued] == [job_id]
    # Its requeue sent one message; the reconciler of the other loop saw it and sent none.
    assert queued_job_ids(job_queue(redis_client, settings)) == {job_id}
    assert job_queue(redis_client, settings).count == 1
    with transaction(settings.resolved_database_url) as session:
        messages = session.scalars(select(JobEvent.message).where(JobEvent.job_id == job_id)).all()
    assert sum("stopped beating; requeued" in message for message in messages) == 1


def test_only_one_process_holds_the_maintenance_turn_at_a_time(settings: Settings) -> None:
    with maintenance_turn(settings.resolved_database_url) as first:
        assert first
        holder_answered = threading.Event()
        other: list[bool] = []

        def another_replica() -> None:
            with maintenance_turn(settings.resolved_database_url) as mine:
                other.append(mine)
            holder_answered.set()

        threading.Thread(target=another_replica).start()
        assert holder_answered.wait(timeout=30)
        assert other == [False]
    with maintenance_turn(settings.resolved_database_url) as again:
        assert again  # released when the round ended


def test_a_deployment_in_another_schema_of_the_database_has_its_own_maintenance_turn(settings: Settings) -> None:
    """The lock was database-wide: one deployment's round made another's skip (a test in its own schema saw
    its lost job left alone while another test's API held the turn)."""
    url = settings.resolved_database_url
    schema = re.search(r"search_path%3D(\w+)", url)
    assert schema is not None, url
    other_schema = f"{schema[1]}_other"
    other_url = url.replace(f"search_path%3D{schema[1]}", f"search_path%3D{other_schema}")
    with engine_for(url).begin() as conn:
        conn.execute(text(f"CREATE SCHEMA IF NOT EXISTS {other_schema}"))
    try:
        with maintenance_turn(url) as mine, maintenance_turn(other_url) as theirs:
            assert mine and theirs
    finally:
        engine_for(other_url).dispose()
        with engine_for(url).begin() as conn:
            conn.execute(text(f"DROP SCHEMA {other_schema}"))

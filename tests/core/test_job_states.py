"""The state machine, enforced by compare-and-set in the real database."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from core import jobs
from core.db import transaction
from core.errors import IllegalTransition, JobNotFound
from core.settings import Settings
from core.states import ALLOWED_TRANSITIONS, TERMINAL_STATES, JobStatus, sources_of
from tests.conftest import TENANT, submit_in_database


def _new_job(settings: Settings, tiny_model: Path, sample_dataset: Path) -> str:
    return submit_in_database(settings, TENANT, tiny_model, sample_dataset)


def test_terminal_states_have_no_way_out() -> None:
    for state in TERMINAL_STATES:
        assert ALLOWED_TRANSITIONS[state] == frozenset()
    assert sources_of(JobStatus.RUNNING) == {JobStatus.QUEUED}
    assert JobStatus.RUNNING in sources_of(JobStatus.QUEUED)  # recovery of a lost worker's job


def test_only_one_of_many_concurrent_claims_wins(settings: Settings, tiny_model: Path, sample_dataset: Path) -> None:
    job_id = _new_job(settings, tiny_model, sample_dataset)

    def claim(worker: int) -> str | None:
        with transaction(settings.resolved_database_url) as session:
            job = jobs.claim_job(session, job_id, f"worker-{worker}")
            return job.worker_id if job else None

    with ThreadPoolExecutor(max_workers=8) as pool:
        winners = [w for w in pool.map(claim, range(8)) if w is not None]
    assert len(winners) == 1
    with transaction(settings.resolved_database_url) as session:
        job = jobs.get_job(session, tenant=TENANT, job_id=job_id)
        assert job.status == "running" and job.attempt == 1 and job.worker_id == winners[0]


def test_illegal_transition_is_refused_and_changes_nothing(
    settings: Settings, tiny_model: Path, sample_dataset: Path
) -> None:
    job_id = _new_job(settings, tiny_model, sample_dataset)
    with transaction(settings.resolved_database_url) as session:
        jobs.transition(session, job_id, JobStatus.CANCELLED, "cancelled by test")
    refused = pytest.raises(IllegalTransition, match="cancelled; it cannot become running")
    with refused, transaction(settings.resolved_database_url) as session:
        jobs.transition(session, job_id, JobStatus.RUNNING, "nope", worker_id="w")
    with transaction(settings.resolved_database_url) as session:
        job = jobs.get_job(session, tenant=TENANT, job_id=job_id)
        assert job.status == "cancelled" and job.worker_id is None
        assert [e.message for e in jobs.job_events(session, job_id)] == ["job created", "cancelled by test"]
    with pytest.raises(JobNotFound), transaction(settings.resolved_database_url) as session:
        jobs.transition(session, "ftjob-missing", JobStatus.RUNNING, "nope")

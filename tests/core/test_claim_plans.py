"""A claim reads a few index entries per waiting tenant, however many jobs are queued or finished (PostgreSQL)."""

from __future__ import annotations

import re
from pathlib import Path

from sqlalchemy import text

from core.db import engine_for, transaction
from core.scheduling import claim_next_job
from core.settings import Settings
from tests.conftest import submit_in_database
from tests.query_plans import copy_job, plans_run

TENANTS = [f"tenant-{n}" for n in range(10)]


def test_a_claim_reads_a_few_rows_per_waiting_tenant_of_a_big_queue_and_history(
    settings: Settings, tiny_model: Path, sample_dataset: Path
) -> None:
    template = submit_in_database(settings, TENANTS[0], tiny_model, sample_dataset)
    with engine_for(settings.resolved_database_url).connect() as conn:
        copy_job(conn, template, 3000, TENANTS)  # queued, like the template
        copy_job(conn, template, 5000, TENANTS[:1], status="succeeded")
        conn.commit()
        conn.execute(text("ANALYZE jobs"))  # what autovacuum keeps up to date on a live table
        conn.commit()
    with transaction(settings.resolved_database_url) as session, plans_run(session, analyze=True) as plans:
        claimed = claim_next_job(session, settings, "worker-1", None, device="cpu", device_name="cpu")
    assert claimed is not None
    assert any("FROM jobs" in plan for plan in plans), plans
    # Each plan node's rows (per loop). Before: a DISTINCT over every queued job for the waiting tenants, and a
    # sort of every queued job for the best 8 (3,001 rows each).
    rows = [int(count) for plan in plans for count in re.findall(r"\(actual time=\S+ rows=(\d+)", plan)]
    assert rows and max(rows) <= 2 * len(TENANTS) + 1, "\n\n".join(plans)

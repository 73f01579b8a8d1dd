"""A status read and a list page cost one connection and two statements: the key lookup, then the jobs with
their newest loss (each job row points at it), however many jobs and metrics there are. Reads and writes
both survive a pooled connection that the database dropped, with no ping before each request."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import Engine, event, null, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from api.schemas import JobList
from core import jobs
from core.api_keys import create_key
from core.db import (
    engine_for,
    loop_read_session_factory,
    read_session_factory,
    transaction,
    utcnow,
    write_session_factory,
)
from core.job_list_page import job_list_page
from core.migrate import upgrade_database
from core.models import Job, JobEvent
from core.settings import Settings
from core.views import job_view
from tests.conftest import TENANT, api_client, serve, submit_in_database
from tests.query_plans import copy_job, plans_run


@pytest.fixture
def reader(settings: Settings, api_key: str) -> Iterator[httpx.Client]:
    """A client of an API served in this process with no maintenance loop, whose statements would count too."""
    with serve(settings.model_copy(update={"run_maintenance_in_api": False})) as url, api_client(url, api_key) as http:
        yield http


@dataclass
class DatabaseUse:
    checkouts: int = 0
    statements: list[str] = field(default_factory=list)


def _loop_read_engine(settings: Settings) -> Engine:
    engine: Engine = loop_read_session_factory(settings.resolved_database_url).kw["bind"]
    return engine.engine  # the engine under the autocommit options


@contextmanager
def database_use(settings: Settings) -> Iterator[DatabaseUse]:
    """What the API (served in this process) asks of the database meanwhile, on either of its pools."""
    url = settings.resolved_database_url
    engines = (engine_for(url), _loop_read_engine(settings), write_session_factory(url).kw["bind"])
    pools = {engine.pool: engine for engine in engines}
    use = DatabaseUse()

    def checkout(*_: Any) -> None:
        use.checkouts += 1

    def statement(_conn: Any, _cursor: Any, sql: str, *_: Any) -> None:
        use.statements.append(sql)

    for pool, engine in pools.items():
        event.listen(pool, "checkout", checkout)
        event.listen(engine, "before_cursor_execute", statement)
    try:
        yield use
    finally:
        for pool, engine in pools.items():
            event.remove(pool, "checkout", checkout)
            event.remove(engine, "before_cursor_execute", statement)


def _train(settings: Settings, job_id: str, losses: list[float | None]) -> None:
    """Metrics rows as a worker writes them; ``None`` is a logging step without a training loss (eval only)."""
    for step, loss in enumerate(losses, start=1):
        with transaction(settings.resolved_database_url) as session:
            extra = {"eval_loss": 0.5} if loss is None else {}
            jobs.record_progress(session, job_id, len(losses), step=step, loss=loss, **extra)


def test_status_read_is_one_connection_and_two_statements_and_shows_the_newest_loss(
    settings: Settings, reader: httpx.Client, tiny_model: Path, sample_dataset: Path
) -> None:
    job_id = submit_in_database(settings, TENANT, tiny_model, sample_dataset)
    _train(settings, job_id, [2.0, 1.5, 1.25, None])
    reader.get(f"/finetune/{job_id}").raise_for_status()  # the first request of a process sets things up
    with database_use(settings) as use:
        view = reader.get(f"/finetune/{job_id}").raise_for_status().json()
    assert (use.checkouts, len(use.statements)) == (1, 2), use.statements
    assert view["latest_metrics"]["step"] == 3 and view["latest_metrics"]["loss"] == 1.25  # not the eval-only row
    assert view["progress"]["step"] == 4


def test_list_page_is_two_statements_however_many_jobs_it_holds(
    settings: Settings, reader: httpx.Client, tiny_model: Path, sample_dataset: Path
) -> None:
    ids = [submit_in_database(settings, TENANT, tiny_model, sample_dataset) for _ in range(5)]
    for n, job_id in enumerate(ids[:3]):
        _train(settings, job_id, [3.0, 2.0 - n / 10])
    reader.get("/finetune").raise_for_status()
    with database_use(settings) as use:
        page = reader.get("/finetune", params={"limit": 100}).raise_for_status().json()["data"]
    assert (use.checkouts, len(use.statements)) == (1, 2), use.statements
    losses = {job["id"]: (job["latest_metrics"] or {}).get("loss") for job in page}
    assert losses == {ids[0]: 2.0, ids[1]: 1.9, ids[2]: 1.8, ids[3]: None, ids[4]: None}
    with database_use(settings) as use:  # /v1 pages the same way
        v1 = reader.get("/v1/fine_tuning/jobs", params={"limit": 100}).raise_for_status().json()["data"]
    assert (use.checkouts, len(use.statements)) == (1, 2), use.statements
    assert {job["id"] for job in v1} == set(ids)


def test_a_read_on_a_connection_the_database_dropped_is_answered_on_a_new_one(
    settings: Settings, reader: httpx.Client, tiny_model: Path, sample_dataset: Path
) -> None:
    """Reads on the event loop skip the pool's pre-ping (a round trip each); a restart or an idle timeout that
    dropped their pooled connection costs a second try, never an error."""
    job_id = submit_in_database(settings, TENANT, tiny_model, sample_dataset)
    reader.get(f"/finetune/{job_id}").raise_for_status()  # the read pool now holds one idle connection
    with loop_read_session_factory(settings.resolved_database_url)() as session:
        pooled = session.execute(text("SELECT pg_backend_pid()")).scalar_one()
    with engine_for(settings.resolved_database_url).connect() as conn:
        assert conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pooled}).scalar_one()
    with database_use(settings) as use:
        answer = reader.get(f"/finetune/{job_id}")
    assert answer.status_code == 200 and answer.json()["id"] == job_id, answer.text
    assert use.checkouts == 2  # the dead connection, then a new one


def test_a_write_on_a_connection_the_database_dropped_is_made_once_on_a_new_one(
    settings: Settings, reader: httpx.Client, tiny_model: Path, sample_dataset: Path
) -> None:
    """Writes skip the pre-ping too: their first statement, the key lookup, finds the dropped connection before
    anything was written, and the write starts again on a new one."""
    first, second = (submit_in_database(settings, TENANT, tiny_model, sample_dataset) for _ in range(2))
    write_session_factory(settings.resolved_database_url).kw["bind"].dispose()  # earlier tests' connections
    reader.post(f"/finetune/{first}/cancel").raise_for_status()  # the write pool now holds one idle connection
    with write_session_factory(settings.resolved_database_url)() as session:
        pooled = session.execute(text("SELECT pg_backend_pid()")).scalar_one()
        session.rollback()
    with engine_for(settings.resolved_database_url).connect() as conn:
        assert conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pooled}).scalar_one()
    with database_use(settings) as use:
        answer = reader.post(f"/finetune/{second}/cancel")
    assert answer.status_code == 200 and answer.json()["status"] == "cancelled", answer.text
    assert use.checkouts == 2  # the dead connection, then a new one
    assert not any(sql.strip().upper() == "SELECT 1" for sql in use.statements), use.statements  # no pings
    with transaction(settings.resolved_database_url) as session:
        events = session.scalars(select(JobEvent.message).where(JobEvent.job_id == second)).all()
    assert sum("cancelled" in message for message in events) == 1, events


def _list_through_the_models(settings: Settings, limit: int, after: str | None = None) -> dict[str, Any]:
    """GET /finetune's page as JobList of job_view gives it: the schema and the single-job path."""
    with transaction(settings.resolved_database_url) as session:
        found = jobs.list_jobs(session, tenant=TENANT, limit=limit, after=after)
        data = [job_view(job) for job in found.items]
        cursor = data[-1].id if found.has_more else None
        return JobList(data=data, has_more=found.has_more, next_cursor=cursor).model_dump(mode="json")


@pytest.mark.parametrize("database", ["postgresql", "sqlite"])
def test_list_page_rendered_from_rows_equals_the_job_views_of_every_state(
    database: str, settings: Settings, api_key: str, tiny_model: Path, sample_dataset: Path
) -> None:
    """The list page skips the models (core.job_list_page); it must answer what they would, field for field,
    on either database (JSON is JSONB on one and text on the other)."""
    if database == "sqlite":
        settings = settings.model_copy(update={"database_url": f"sqlite:///{settings.data_root / 'tuneq.db'}"})
        upgrade_database(settings.resolved_database_url)
        with transaction(settings.resolved_database_url) as session:
            api_key = create_key(session, TENANT, "reader").secret
    served = settings.model_copy(update={"run_maintenance_in_api": False})
    with serve(served) as url, api_client(url, api_key) as reader:
        _compare_list_pages(settings, reader, tiny_model, sample_dataset)


def _compare_list_pages(settings: Settings, reader: httpx.Client, tiny_model: Path, sample_dataset: Path) -> None:
    queued, running, failed, succeeded, no_estimate, null_estimate = (
        submit_in_database(settings, TENANT, tiny_model, sample_dataset) for _ in range(6)
    )
    _train(settings, running, [2.0, 1.5, None])
    now = utcnow()
    changes: dict[str, dict[str, Any]] = {
        queued: {"user_metadata": {"team": "search", "run": "7"}, "webhook_url": "https://example.com/hook"},
        running: {
            "status": "running", "worker_id": "gpu-0", "started_at": now, "cancel_requested_at": now,
            "device": "cuda", "device_name": "H100", "dtype": "bfloat16", "quantization": "nf4",
        },
        failed: {"status": "failed", "error_code": "out_of_memory", "error_message": None, "finished_at": now},
        succeeded: {
            "status": "succeeded", "adapter_path": "jobs/x/adapter", "result": {"eval_loss": 0.25, "samples": []},
            "trained_tokens": 1234, "gpu_seconds": 12.5, "cost_usd": 0.01, "finished_at": now,
        },
        no_estimate: {"estimate": null()},  # jobs from before estimates: SQL NULL
        null_estimate: {"estimate": None},  # JSON null
    }  # fmt: skip
    with transaction(settings.resolved_database_url) as session:
        for job_id, values in changes.items():
            session.execute(update(Job).where(Job.id == job_id).values(**values))
    page = reader.get("/finetune", params={"limit": 100}).raise_for_status().json()
    assert page == _list_through_the_models(settings, 100)
    assert [job["id"] for job in page["data"]] == [null_estimate, no_estimate, succeeded, failed, running, queued]
    first = reader.get("/finetune", params={"limit": 4}).raise_for_status().json()
    assert first == _list_through_the_models(settings, 4) and first["has_more"]
    second = reader.get("/finetune", params={"limit": 4, "after": first["next_cursor"]}).raise_for_status().json()
    assert second == _list_through_the_models(settings, 4, first["next_cursor"]) and not second["has_more"]


def _grow_tenant_behind_the_statistics(settings: Settings, template: str, jobs_count: int) -> None:
    """``jobs_count`` jobs for TENANT, added after an ANALYZE that saw 200 jobs of four other tenants, with
    autovacuum off for the table so that no ANALYZE catches up meanwhile: a tenant that grew since the last
    ANALYZE, as a busy new tenant of a big table does for hours."""
    with engine_for(settings.resolved_database_url).connect() as conn:
        conn.execute(text("ALTER TABLE jobs SET (autovacuum_enabled = false)"))
        copy_job(conn, template, 200, [f"other-{n}" for n in range(4)])
        conn.commit()
        conn.execute(text("ANALYZE jobs"))
        copy_job(conn, template, jobs_count, [TENANT])
        conn.commit()


def _list_page_plans(sessions: sessionmaker[Session], pages: int) -> list[str]:
    """The plans PostgreSQL ran for ``pages`` first pages of TENANT's jobs on one pooled connection."""
    with sessions() as session, plans_run(session) as plans:
        for _ in range(pages):
            assert len(orjson.loads(job_list_page(session, tenant=TENANT, limit=100))["data"]) == 100
    return [plan for plan in plans if "FROM jobs" in plan]


def test_list_pages_read_only_their_rows_of_a_tenant_that_grew_since_the_last_analyze(
    settings: Settings, tiny_model: Path, sample_dataset: Path
) -> None:
    """The API's reads run generic plans (core.db.loop_read_session_factory): the page's index, in its order, up
    to the limit. A plan made for the values believed the stale statistics and sorted all 3,000 jobs."""
    template = submit_in_database(settings, "other", tiny_model, sample_dataset)
    _grow_tenant_behind_the_statistics(settings, template, 3000)
    try:
        api_plans = _list_page_plans(loop_read_session_factory(settings.resolved_database_url), pages=12)
        default_plans = _list_page_plans(read_session_factory(settings.resolved_database_url), pages=1)
    finally:
        with engine_for(settings.resolved_database_url).begin() as conn:
            conn.execute(text("ALTER TABLE jobs RESET (autovacuum_enabled)"))
    assert len(api_plans) == 12
    for plan in api_plans:
        assert "Index Scan Backward using ix_jobs_tenant_created" in plan and "Sort" not in plan, plan
    assert "Sort Key: jobs.created_at DESC" in default_plans[0], default_plans  # the case is real

"""What PostgreSQL does with a query: bulk copies of a job to grow the jobs table, and the plans it runs."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, text
from sqlalchemy.orm import Session

from core.models import Job


def copy_job(conn: Connection, template: str, count: int, tenants: list[str], status: str | None = None) -> None:
    """``count`` copies of job ``template``, older than it, spread over ``tenants`` (in ``status``, if given)."""
    columns = [column.name for column in Job.__table__.c]
    copied = {
        "id": "id || '-' || :batch || '-' || g",
        "tenant": "(CAST(:tenants AS text[]))[1 + g % cardinality(CAST(:tenants AS text[]))]",
        "created_at": "created_at - g * interval '1 millisecond'",
        **({"status": ":status"} if status is not None else {}),
    }
    select_list = ", ".join(copied.get(name, name) for name in columns)
    conn.execute(
        text(
            f"INSERT INTO jobs ({', '.join(columns)}) SELECT {select_list} "
            "FROM jobs, generate_series(1, :n) AS g WHERE id = :template"
        ),
        {"batch": f"{tenants[0]}-{status}", "tenants": tenants, "n": count, "template": template, "status": status},
    )


@contextmanager
def plans_run(session: Session, analyze: bool = False) -> Iterator[list[str]]:
    """The plans PostgreSQL runs for the session's statements in the block, with actual row counts if ``analyze``
    (auto_explain, sent back as notices on the session's connection)."""
    plans: list[str] = []
    driver = session.connection().connection.driver_connection

    def note(diagnostic: Any) -> None:
        if "Query Text" in (diagnostic.message_primary or ""):
            plans.append(diagnostic.message_primary)

    for setting in ("LOAD 'auto_explain'", "SET auto_explain.log_level = notice"):
        session.execute(text(setting))
    session.execute(text(f"SET auto_explain.log_analyze = {'on' if analyze else 'off'}"))
    session.execute(text("SET auto_explain.log_min_duration = 0"))
    driver.add_notice_handler(note)
    try:
        yield plans
    finally:
        driver.remove_notice_handler(note)
        session.execute(text("RESET auto_explain.log_min_duration"))
        session.execute(text("RESET auto_explain.log_analyze"))

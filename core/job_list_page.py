"""GET /finetune's page of jobs: one query, rendered straight to JSON bytes.

A page of 100 jobs is ~280 KB, most of it JSON columns: each job's estimate
alone is 1.7 KB. Through the ORM and ``JobView`` each was decoded from
JSONB, validated into models and encoded again, 6.5 ms of CPU a page: the
whole budget of 150 pages/s on two cores (issue 11). Here the JSON columns
leave the database as text and are spliced into the answer unparsed
(``orjson.Fragment``), and the three numbers the view derives from the
estimate are extracted in SQL.

The answer equals ``JobList`` of ``core.views.job_view``, which stays the
documented schema and the single-job path; a test compares the two for jobs
in every state. One difference is deliberate: a stored estimate is passed on
as stored, where ``job_view`` drops one that no longer parses.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from sqlalchemy import JSON, Row, Text, cast, select
from sqlalchemy.orm import Session

from core.jobs import get_job
from core.models import Job, JobMetric
from core.pages import newest_first_query, page_of
from core.views import JobView, MetricView, adapter_name, progress_percent

_JOBS = Job.__table__.c
# The view's fields stored as they are shown, in the view's order; JSON columns come as text.
_STORED = [name for name in JobView.model_fields if name in _JOBS]
# What the rest of the view is derived from.
_DERIVED_FROM = [
    "step", "total_steps", "epoch", "gpu_seconds", "cost_usd", "device", "device_name", "dtype", "quantization",
    "error_code", "error_message", "adapter_path",
]  # fmt: skip
_ESTIMATED = [
    Job.estimate["total_steps"].as_integer(),
    Job.estimate["seconds"].as_float(),
    Job.estimate["cost_usd"].as_float(),
]
_METRIC = [getattr(JobMetric, name) for name in MetricView.model_fields]
_COLUMNS = [
    *(cast(_JOBS[name], Text) if isinstance(_JOBS[name].type, JSON) else _JOBS[name] for name in _STORED),
    *(_JOBS[name] for name in _DERIVED_FROM),
    *_ESTIMATED,
    JobMetric.id,
    *_METRIC,
]
_JSON_TEXT = frozenset(name for name in _STORED if isinstance(_JOBS[name].type, JSON))
_JOB_OBJECT = JobView.model_fields["object"].default


def _unparsed(name: str, value: Any) -> Any:
    return orjson.Fragment(value) if value is not None and name in _JSON_TEXT else value


def _job(row: Row[Any]) -> dict[str, Any]:
    values = iter(row)
    stored = {name: _unparsed(name, next(values)) for name in _STORED}
    (step, total_steps, epoch, gpu_seconds, cost_usd, device, device_name, dtype, quantization, error_code,
     error_message, adapter_path) = (next(values) for _ in _DERIVED_FROM)  # fmt: skip
    estimated_steps, estimated_seconds, estimated_cost = (next(values) for _ in _ESTIMATED)
    metric_id = next(values)
    metric = {name: next(values) for name in MetricView.model_fields}
    derived = {
        "object": _JOB_OBJECT,
        "progress": {
            "step": step,
            "total_steps": total_steps,
            "epoch": epoch,
            "percent": progress_percent(step, total_steps),
            "estimated_total_steps": estimated_steps,
        },
        "latest_metrics": metric if metric_id is not None else None,
        "cost": {
            "gpu_seconds": gpu_seconds,
            "cost_usd": cost_usd,
            "estimated_seconds": estimated_seconds,
            "estimated_cost_usd": estimated_cost,
        },
        "environment": (
            {"device": device, "device_name": device_name, "dtype": dtype, "quantization": quantization}
            if device
            else None
        ),
        "error": {"code": error_code, "message": error_message or ""} if error_code else None,
        "adapter": adapter_name(adapter_path),
    }
    return {name: stored[name] if name in stored else derived[name] for name in JobView.model_fields}


def render(rows: Sequence[Row[Any]], has_more: bool) -> bytes:
    data = [_job(row) for row in rows]
    page = {"object": "list", "data": data, "has_more": has_more, "next_cursor": data[-1]["id"] if has_more else None}
    # UTC as "Z", as pydantic writes it.
    return orjson.dumps(page, option=orjson.OPT_UTC_Z)


def job_list_page(session: Session, *, tenant: str, limit: int, after: str | None = None) -> bytes:
    """A tenant's jobs, newest first, after the job ``after``: GET /finetune's answer, as JSON bytes."""
    cursor = get_job(session, tenant=tenant, job_id=after) if after is not None else None
    query = select(*_COLUMNS).outerjoin(JobMetric, JobMetric.id == Job.latest_metric_id).where(Job.tenant == tenant)
    page = page_of(session.execute(newest_first_query(query, Job, cursor, limit)).all(), limit)
    return render(page.items, page.has_more)

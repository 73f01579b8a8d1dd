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
from sqlalchemy import JSON, Row, Text, bindparam, cast, select
from sqlalchemy.orm import Session

from core.jobs import get_job
from core.models import Job, JobMetric
from core.pages import PageStatements
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
_PAGES = PageStatements.of(
    select(*_COLUMNS)
    .outerjoin(JobMetric, JobMetric.id == Job.latest_metric_id)
    .where(Job.tenant == bindparam("tenant")),
    Job,
)
_JSON_TEXT = [i for i, name in enumerate(_STORED) if isinstance(_JOBS[name].type, JSON)]
_FIELDS = tuple(JobView.model_fields)  # read once: pydantic's class property costs a lookup each time
_METRIC_FIELDS = tuple(MetricView.model_fields)
_JOB_OBJECT = JobView.model_fields["object"].default
# Where each group of columns sits in a row.
_DERIVED_AT = len(_STORED)
_ESTIMATED_AT = _DERIVED_AT + len(_DERIVED_FROM)
_METRIC_AT = _ESTIMATED_AT + len(_ESTIMATED)


def _job(row: Row[Any]) -> dict[str, Any]:
    values = list(row)
    for at in _JSON_TEXT:  # spliced in as they are: already JSON
        if values[at] is not None:
            values[at] = orjson.Fragment(values[at])
    job = dict(zip(_STORED, values, strict=False))
    (step, total_steps, epoch, gpu_seconds, cost_usd, device, device_name, dtype, quantization, error_code,
     error_message, adapter_path) = values[_DERIVED_AT:_ESTIMATED_AT]  # fmt: skip
    estimated_steps, estimated_seconds, estimated_cost = values[_ESTIMATED_AT:_METRIC_AT]
    job["object"] = _JOB_OBJECT
    job["progress"] = {
        "step": step,
        "total_steps": total_steps,
        "epoch": epoch,
        "percent": progress_percent(step, total_steps),
        "estimated_total_steps": estimated_steps,
    }
    # The newest metrics row's id, then its fields; no id: the outer join found none.
    job["latest_metrics"] = (
        dict(zip(_METRIC_FIELDS, values[_METRIC_AT + 1 :], strict=True)) if values[_METRIC_AT] is not None else None
    )
    job["cost"] = {
        "gpu_seconds": gpu_seconds,
        "cost_usd": cost_usd,
        "estimated_seconds": estimated_seconds,
        "estimated_cost_usd": estimated_cost,
    }
    job["environment"] = (
        {"device": device, "device_name": device_name, "dtype": dtype, "quantization": quantization} if device else None
    )
    job["error"] = {"code": error_code, "message": error_message or ""} if error_code else None
    job["adapter"] = adapter_name(adapter_path)
    return {name: job[name] for name in _FIELDS}  # in the view's order, as GET /finetune/{id} writes it


def render(rows: Sequence[Row[Any]], has_more: bool) -> bytes:
    data = [_job(row) for row in rows]
    page = {"object": "list", "data": data, "has_more": has_more, "next_cursor": data[-1]["id"] if has_more else None}
    # UTC as "Z", as pydantic writes it.
    return orjson.dumps(page, option=orjson.OPT_UTC_Z)


def job_list_page(session: Session, *, tenant: str, limit: int, after: str | None = None) -> bytes:
    """A tenant's jobs, newest first, after the job ``after``: GET /finetune's answer, as JSON bytes."""
    cursor = get_job(session, tenant=tenant, job_id=after) if after is not None else None
    # On the session's connection: rows of plain columns need none of the ORM's loading.
    page = _PAGES.run(session.connection(), {"tenant": tenant}, cursor, limit)
    return render(page.items, page.has_more)

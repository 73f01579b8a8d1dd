"""Log lines that say which job, tenant and worker they are about; JSON when TUNEQ_LOG_FORMAT=json.

The job is held in a plain module-level slot rather than a contextvar: a job
process runs exactly one job, and the threads it starts (heartbeat, metrics
writer) must name the same job, which a contextvar would not carry into them.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

from core.settings import LogFormat, Settings

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s%(job_suffix)s"
JSON_FIELDS = ["levelname", "name", "message", "job_id", "tenant", "worker"]


@dataclass(frozen=True)
class JobContext:
    job_id: str | None = None
    tenant: str | None = None
    worker: str | None = None


_context = JobContext()


def bind_worker(worker: str | None) -> None:
    """Name this process's worker on every line from now on."""
    global _context
    _context = JobContext(_context.job_id, _context.tenant, worker)


def bind_job(job_id: str, tenant: str, worker: str | None) -> None:
    """Name this job, its tenant and worker on every line from now on (one job per process)."""
    global _context
    _context = JobContext(job_id, tenant, worker)


def current_context() -> JobContext:
    return _context


class JobContextFilter(logging.Filter):
    """Puts job_id, tenant and worker on every record (None when the line is about no job)."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = _context
        record.job_id, record.tenant, record.worker = context.job_id, context.tenant, context.worker
        parts = [f"{key}={value}" for key, value in vars(context).items() if value]
        record.job_suffix = f" [{' '.join(parts)}]" if parts else ""
        return True


def configure_logging(settings: Settings) -> None:
    """One handler on the root logger, in the configured format; replaces any earlier one."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(JobContextFilter())
    if settings.log_format is LogFormat.JSON:
        handler.setFormatter(
            JsonFormatter(
                JSON_FIELDS,
                rename_fields={"levelname": "level"},
                timestamp=True,  # ISO 8601 in UTC
                reserved_attrs=[*RESERVED_ATTRS, "job_suffix"],  # the text format's rendering of the fields above
            )
        )
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=settings.log_level.upper(), handlers=[handler], force=True)
    if settings.worker_id and not _context.worker:
        bind_worker(settings.worker_id)

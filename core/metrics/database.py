"""Gauges read from the database at scrape time: the database is the truth about jobs and workers."""

from __future__ import annotations

import logging
from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import and_, func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, aliased

from core.db import session_factory, utcnow
from core.models import Job, JobMetric, Worker
from core.states import JobStatus

log = logging.getLogger(__name__)


def dependency_up(name: str, up: bool) -> GaugeMetricFamily:
    family = GaugeMetricFamily(
        "tuneq_dependency_up", "Whether the last scrape could read the dependency", labels=["dependency"]
    )
    family.add_metric([name], 1.0 if up else 0.0)
    return family


class DatabaseCollector(Collector):
    def __init__(self, database_url: str) -> None:
        self.database_url = database_url

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            with session_factory(self.database_url)() as session:
                families = [
                    self._jobs(session),
                    self._oldest_queued(session),
                    self._running_per_worker(session),
                    self._tokens_per_second(session),
                ]
        except SQLAlchemyError as exc:
            log.warning("metrics: database unreadable: %s", exc)
            yield dependency_up("database", False)
            return
        yield dependency_up("database", True)
        yield from families

    @staticmethod
    def _jobs(session: Session) -> GaugeMetricFamily:
        family = GaugeMetricFamily("tuneq_jobs", "Jobs by status and tenant", labels=["status", "tenant"])
        rows = session.execute(select(Job.status, Job.tenant, func.count()).group_by(Job.status, Job.tenant))
        for status, tenant, count in rows:
            family.add_metric([status, tenant], count)
        return family

    @staticmethod
    def _oldest_queued(session: Session) -> GaugeMetricFamily:
        family = GaugeMetricFamily(
            "tuneq_oldest_queued_job_age_seconds", "Age of the oldest queued job (0 when none is queued)"
        )
        oldest = session.scalar(select(func.min(Job.created_at)).where(Job.status == JobStatus.QUEUED.value))
        if oldest is not None and oldest.tzinfo is None:  # SQLite returns aggregates without the column's type
            oldest = oldest.replace(tzinfo=utcnow().tzinfo)
        family.add_metric([], (utcnow() - oldest).total_seconds() if oldest else 0.0)
        return family

    @staticmethod
    def _running_per_worker(session: Session) -> GaugeMetricFamily:
        """Every live worker, with 0 when idle, so an idle GPU shows up as idle rather than missing."""
        family = GaugeMetricFamily(
            "tuneq_running_jobs", "Running jobs per worker and GPU", labels=["worker", "host", "gpu", "gpu_name"]
        )
        running = and_(Job.worker_id == Worker.id, Job.status == JobStatus.RUNNING.value)
        rows = session.execute(
            select(Worker.id, Worker.host, Worker.gpu_index, Worker.gpu_name, func.count(Job.id))
            .outerjoin(Job, running)
            .where(Worker.status != "stopped")
            .group_by(Worker.id, Worker.host, Worker.gpu_index, Worker.gpu_name)
        )
        for worker_id, host, gpu, gpu_name, count in rows:
            family.add_metric([worker_id, host, "" if gpu is None else str(gpu), gpu_name or ""], count)
        return family

    @staticmethod
    def _tokens_per_second(session: Session) -> GaugeMetricFamily:
        family = GaugeMetricFamily(
            "tuneq_job_tokens_per_second",
            "Training throughput of each running job at its latest logging step",
            labels=["job", "tenant", "worker"],
        )
        earlier = aliased(JobMetric)
        latest = (
            select(func.max(earlier.id))
            .where(earlier.job_id == Job.id, earlier.tokens_per_second.is_not(None))
            .correlate(Job)
            .scalar_subquery()
        )
        rows = session.execute(
            select(Job.id, Job.tenant, Job.worker_id, JobMetric.tokens_per_second)
            .join(JobMetric, JobMetric.id == latest)
            .where(Job.status == JobStatus.RUNNING.value)
        )
        for job_id, tenant, worker_id, tokens_per_second in rows:
            family.add_metric([job_id, tenant, worker_id or ""], float(tokens_per_second or 0.0))
        return family

"""Assemble what one ``/metrics`` answer contains."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from core.metrics.database import DatabaseCollector
from core.metrics.gpu import NvmlCollector
from core.metrics.multiprocess import active_multiprocess_dir
from core.metrics.queue import QueueCollector
from core.settings import Settings


class RecordedMetrics(Collector):
    """Counters and histograms recorded into ``directory`` by this host's tuneq processes.

    A process started by the ``tuneq`` commands records into that directory
    itself. One that keeps its metrics in memory instead (an app served inside
    the tests, or by a bare ``uvicorn``) adds its own, for the names no file holds.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def collect(self) -> Iterator[Metric]:
        from_files = []
        if self.directory.is_dir():
            from_files = list(MultiProcessCollector(None, path=str(self.directory)).collect())
        yield from from_files
        if active_multiprocess_dir() is None:
            recorded = {family.name for family in from_files}
            yield from (family for family in REGISTRY.collect() if family.name not in recorded)


def api_registry(settings: Settings) -> CollectorRegistry:
    """The API's view: recorded metrics plus service-wide gauges from the database and Redis."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RecordedMetrics(settings.resolved_metrics_dir))
    registry.register(DatabaseCollector(settings.resolved_database_url))
    if settings.redis_url:
        registry.register(QueueCollector(settings.redis_url, settings.queue_name, settings.readiness_timeout_seconds))
    return registry


def worker_registry(settings: Settings, gpu_indices: Sequence[int] | None, worker_id: str) -> CollectorRegistry:
    """A worker's view: what its job processes recorded, and its GPU's memory and utilisation."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RecordedMetrics(settings.resolved_metrics_dir))
    registry.register(NvmlCollector(gpu_indices, worker_id))
    return registry


def render(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)

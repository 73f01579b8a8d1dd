"""A worker's own ``/metrics`` port: its GPU from NVML, and what its job processes recorded.

The API's ``/metrics`` answers for the whole service from the database; GPU
readings can only come from the host that has the GPU, so each worker serves
them itself when ``TUNEQ_METRICS_PORT`` is set (port + GPU index, so that the
workers of one host do not collide).
"""

from __future__ import annotations

import logging

from prometheus_client import start_http_server

from core.metrics.exposition import worker_registry
from core.settings import Settings

log = logging.getLogger(__name__)


def serve_worker_metrics(settings: Settings, gpu: int | None, worker_id: str) -> int | None:
    """Start serving in a background thread; returns the port, or None when not configured."""
    if settings.metrics_port is None:
        return None
    port = settings.metrics_port + (gpu or 0)
    registry = worker_registry(settings, [] if gpu is None else [gpu], worker_id)
    start_http_server(port, registry=registry)
    log.info("serving worker metrics on :%d/metrics", port)
    return port

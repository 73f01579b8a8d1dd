"""Counters and histograms that tuneq's processes record as things happen.

Importing this module imports prometheus_client: in a process that should
record into the shared directory, call ``multiprocess.use_multiprocess_dir``
first (the ``tuneq`` commands do).
"""

from __future__ import annotations

from enum import StrEnum

from prometheus_client import Counter, Histogram

# Seconds, from a short wait in the queue to a multi-day fine-tune.
JOB_DURATION_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400, 43200, 86400, 259200, float("inf"))
REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, float("inf"))


class WebhookOutcome(StrEnum):
    DELIVERED = "delivered"
    RETRYING = "retrying"  # failed, another attempt is scheduled
    FAILED = "failed"  # failed for good


JOB_WAIT = Histogram(
    "tuneq_job_wait_seconds",
    "Time from submission to the first claim by a worker",
    buckets=JOB_DURATION_BUCKETS,
)
JOB_RUN = Histogram(
    "tuneq_job_run_seconds",
    "Time one attempt of a job ran on a worker, by how the attempt ended",
    ["outcome"],
    buckets=JOB_DURATION_BUCKETS,
)
WEBHOOK_DELIVERIES = Counter("tuneq_webhook_deliveries", "Webhook delivery attempts, by outcome", ["outcome"])
HTTP_REQUEST_DURATION = Histogram(
    "tuneq_http_request_duration_seconds",
    "API request latency, by route template (not the raw path, which carries ids)",
    ["method", "route", "status"],
    buckets=REQUEST_BUCKETS,
)


def record_webhook_delivery(outcome: str) -> None:
    """Count one webhook delivery attempt: ``delivered``, ``retrying`` or ``failed`` (the dispatcher calls this)."""
    WEBHOOK_DELIVERIES.labels(outcome=WebhookOutcome(outcome).value).inc()


def record_job_wait(seconds: float) -> None:
    JOB_WAIT.observe(max(seconds, 0.0))


def record_job_run(outcome: str, seconds: float) -> None:
    JOB_RUN.labels(outcome=outcome).observe(max(seconds, 0.0))


def record_request(method: str, route: str, status: int, seconds: float) -> None:
    HTTP_REQUEST_DURATION.labels(method=method, route=route, status=str(status)).observe(seconds)

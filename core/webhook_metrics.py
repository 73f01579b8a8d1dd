"""Counts of webhook delivery outcomes, for metrics.

Backed by a prometheus_client Counter (``tuneq_webhook_deliveries_total`` by
``outcome``) when prometheus-client is installed; a no-op otherwise. Whoever
exposes ``/metrics`` serves the default registry, which holds this counter.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class DeliveryOutcome(StrEnum):
    DELIVERED = "delivered"  # the receiver answered 2xx
    RETRYING = "retrying"  # an attempt failed; another is scheduled
    FAILED = "failed"  # failed for good: out of attempts, 410 Gone, endpoint disabled


_counter: Any
try:
    from prometheus_client import Counter

    _counter = Counter("tuneq_webhook_deliveries", "Webhook delivery attempts by outcome", ["outcome"])
except ImportError:  # metrics are optional; delivery is not
    _counter = None


def record_delivery(outcome: DeliveryOutcome) -> None:
    """Count one attempt's outcome."""
    if _counter is not None:
        _counter.labels(outcome=outcome.value).inc()

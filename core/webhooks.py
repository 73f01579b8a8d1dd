"""Outgoing webhooks: build the event for a finished job and deliver it.

Delivery failures never touch the job: the job's state is already committed
when a webhook is sent. (Signing, a delivery table and long retries come with
the roadmap's "webhooks people can trust"; they belong in this module.)
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import httpx

from core.db import utcnow
from core.ids import new_id
from core.views import JobView

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeliveryResult:
    delivered: bool
    attempts: int
    status_code: int | None
    error: str | None


def job_event(job: JobView) -> dict[str, Any]:
    """The JSON body sent for a job that reached a terminal state."""
    return {
        "id": new_id("evt"),
        "type": f"fine_tune.job.{job.status}",
        "created_at": utcnow().isoformat(),
        "data": job.model_dump(mode="json"),
    }


def deliver(url: str, event: dict[str, Any], attempts: int, timeout: float, backoff: float = 1.0) -> DeliveryResult:
    """POST the event, retrying connection errors and 5xx/429 with exponential backoff."""
    status: int | None = None
    error: str | None = None
    headers = {"webhook-id": str(event["id"]), "content-type": "application/json"}
    for attempt in range(1, attempts + 1):
        try:
            response = httpx.post(url, json=event, headers=headers, timeout=timeout)
            status, error = response.status_code, None
            if response.is_success:
                return DeliveryResult(True, attempt, status, None)
            if response.status_code < 500 and response.status_code != 429:
                return DeliveryResult(False, attempt, status, f"receiver answered {status}")
            error = f"receiver answered {status}"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        if attempt < attempts:
            time.sleep(backoff * 2 ** (attempt - 1))
    log.warning("webhook to %s failed after %d attempts: %s", url, attempts, error)
    return DeliveryResult(False, attempts, status, error)

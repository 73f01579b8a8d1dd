"""The webhook dispatcher: a loop, apart from the API and the GPU workers, that sends due deliveries.

Run it as ``tuneq dispatcher`` (one or more, on any hosts). It claims due rows
from the outbox, sends up to ``webhook_dispatcher_threads`` at once, and
records each attempt. Nothing here keeps state across restarts: the outbox is
the state, so a dispatcher that stops or dies loses nothing.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

from core.db import transaction
from core.settings import Settings
from core.webhook_delivery import send_attempt, webhook_client
from core.webhook_outbox import ClaimedDelivery, claim_due, record_attempt

log = logging.getLogger(__name__)


class Dispatcher:
    def __init__(self, settings: Settings, name: str | None = None) -> None:
        self.settings = settings
        self.name = name or f"dispatcher-{socket.gethostname()}-{os.getpid()}"
        self.client = webhook_client(settings)

    def _claim(self, limit: int) -> list[ClaimedDelivery]:
        with transaction(self.settings.resolved_database_url) as session:
            return claim_due(session, self.settings, limit)

    def _deliver(self, delivery: ClaimedDelivery) -> None:
        result = send_attempt(self.client, self.settings, delivery)
        log.info(
            "delivery %s (event %s) attempt %d: %s",
            delivery.id,
            delivery.event_id,
            delivery.attempt,
            result.status_code or result.error,
        )
        with transaction(self.settings.resolved_database_url) as session:
            record_attempt(session, self.settings, delivery, result, self.name)

    def run(self, stop: threading.Event) -> None:
        """Send until ``stop`` is set; then finish the attempts in flight. Errors never end the loop."""
        threads = self.settings.webhook_dispatcher_threads
        in_flight: set[Future[None]] = set()
        with ThreadPoolExecutor(threads, thread_name_prefix="webhook") as pool:
            while not stop.is_set():
                try:
                    for delivery in self._claim(threads - len(in_flight)) if len(in_flight) < threads else []:
                        in_flight.add(pool.submit(self._deliver, delivery))
                except Exception:  # a database outage: the rows wait in the outbox
                    log.exception("could not claim webhook deliveries")
                if in_flight:
                    done, _ = wait(in_flight, self.settings.webhook_poll_interval_seconds, FIRST_COMPLETED)
                    for future in done:
                        if future.exception() is not None:  # its lease expires and another attempt follows
                            log.error("webhook delivery failed to record", exc_info=future.exception())
                    in_flight -= done
                else:
                    stop.wait(self.settings.webhook_poll_interval_seconds)
        self.client.close()

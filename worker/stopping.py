"""Why a running job should stop, and the heartbeat thread that finds out.

Stopping is cooperative: the trainer checks ``StopFlag.is_set`` after every
step and saves a checkpoint before it stops. Killing the process is only the
fallback for a job that does not reach a step boundary in time.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from enum import StrEnum
from types import FrameType

from sqlalchemy.exc import SQLAlchemyError

from core import jobs
from core.db import run_with_retry
from core.settings import Settings
from core.states import JobStatus

log = logging.getLogger(__name__)


class StopReason(StrEnum):
    CANCEL = "cancel"  # a user asked: end the job cancelled
    PAUSE = "pause"  # a user asked: checkpoint, free the GPU, park the job as paused (not requeued)
    SHUTDOWN = "shutdown"  # the worker is going away: put the job back on the queue
    TIMEOUT = "timeout"  # the job's time limit: fail it, keep its checkpoint
    LOST = "lost"  # the database says someone else owns the job now: touch nothing


class StopFlag:
    def __init__(self) -> None:
        self._reason: StopReason | None = None
        self._lock = threading.Lock()
        self.requested_at: float | None = None

    def request(self, reason: StopReason) -> None:
        with self._lock:
            if self._reason is None:  # the first reason wins: a cancel is not turned into a requeue
                self._reason = reason
                self.requested_at = time.monotonic()
                log.info("stop requested: %s", reason.value)

    @property
    def reason(self) -> StopReason | None:
        return self._reason

    def is_set(self) -> bool:
        return self._reason is not None


def stop_on_sigterm(flag: StopFlag) -> None:
    """SIGTERM (forwarded by the worker on shutdown) asks for a checkpoint and a requeue."""

    def handler(signum: int, frame: FrameType | None) -> None:
        flag.request(StopReason.SHUTDOWN)

    signal.signal(signal.SIGTERM, handler)


class Heartbeat(threading.Thread):
    """Beats for a running job, watches for cancel and the time limit, and kills a job that will not stop."""

    def __init__(
        self,
        settings: Settings,
        job_id: str,
        flag: StopFlag,
        max_run_seconds: int | None,
        on_forced_stop: Callable[[StopReason], None],
    ) -> None:
        super().__init__(name=f"heartbeat-{job_id}", daemon=True)
        self._settings = settings
        self._job_id = job_id
        self._flag = flag
        self._deadline = time.monotonic() + max_run_seconds if max_run_seconds else None
        self._on_forced_stop = on_forced_stop
        self._done = threading.Event()

    def stop(self) -> None:
        self._done.set()
        self.join(timeout=10)

    def run(self) -> None:
        while not self._done.wait(self._settings.heartbeat_interval_seconds):
            self._beat()
            if self._deadline is not None and time.monotonic() > self._deadline:
                self._flag.request(StopReason.TIMEOUT)
            self._kill_if_overdue()

    def _beat(self) -> None:
        try:
            reply = run_with_retry(
                self._settings.resolved_database_url,
                lambda session: jobs.heartbeat(session, self._job_id),
                deadline_seconds=self._settings.heartbeat_interval_seconds,
            )
        except SQLAlchemyError as exc:  # a short outage: training goes on, the next beat retries
            log.warning("heartbeat for %s failed: %s", self._job_id, exc)
            return
        if reply.status != JobStatus.RUNNING:
            self._flag.request(StopReason.LOST)
        elif reply.cancel_requested:
            self._flag.request(StopReason.CANCEL)
        elif reply.pause_requested:
            self._flag.request(StopReason.PAUSE)

    def _kill_if_overdue(self) -> None:
        reason, since = self._flag.reason, self._flag.requested_at
        if reason is None or since is None:
            return
        grace = (
            self._settings.graceful_stop_seconds
            if reason is StopReason.SHUTDOWN
            else self._settings.cancel_grace_seconds
        )
        if time.monotonic() - since > grace:
            log.error("job %s did not stop within %.0fs of %s; ending its process", self._job_id, grace, reason)
            self._on_forced_stop(reason)
            os._exit(1)

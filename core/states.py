"""The job state machine: the only place that says which status changes are allowed."""

from __future__ import annotations

from enum import StrEnum


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    PAUSED = "paused"  # held by its owner: off the queue, off the GPU, resumable from its checkpoint

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATES


TERMINAL_STATES = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED})

ALLOWED_TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.QUEUED: frozenset({JobStatus.RUNNING, JobStatus.CANCELLED, JobStatus.FAILED, JobStatus.PAUSED}),
    # running -> queued is recovery: a lost worker's job goes back on the queue.
    # running -> paused happens only once the run has checkpointed and let go of its GPU.
    JobStatus.RUNNING: frozenset(
        {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.QUEUED, JobStatus.PAUSED}
    ),
    # resume puts a paused job back in the queue; it may also be cancelled while it waits.
    JobStatus.PAUSED: frozenset({JobStatus.QUEUED, JobStatus.CANCELLED}),
    JobStatus.SUCCEEDED: frozenset(),
    JobStatus.FAILED: frozenset(),
    JobStatus.CANCELLED: frozenset(),
}


def sources_of(target: JobStatus) -> frozenset[JobStatus]:
    """Every status from which ``target`` may be reached."""
    return frozenset(src for src, targets in ALLOWED_TRANSITIONS.items() if target in targets)

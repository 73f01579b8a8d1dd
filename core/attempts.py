"""Attempts: the one place a job's run count is advanced, refunded and judged.

An attempt is used when a worker claims the job. A graceful stop (the worker
shutting down, not the job's fault) refunds it. A machine failure or a lost
worker is retried while attempts remain; after ``max_attempts`` the job fails.
"""

from __future__ import annotations

from typing import Any, Protocol

from core.models import Job


class HasAttempts(Protocol):
    attempt: int
    max_attempts: int


def claimed() -> dict[str, Any]:
    """Column values that use up one attempt (written with the claim)."""
    return {"attempt": Job.attempt + 1}


def refunded() -> dict[str, Any]:
    """Column values that give back the attempt a graceful stop did not use."""
    return {"attempt": Job.attempt - 1}


def may_retry(job: HasAttempts) -> bool:
    """Whether a job whose current attempt failed (machine error, lost worker) gets another."""
    return job.attempt < job.max_attempts


def describe(job: HasAttempts) -> str:
    return f"attempt {job.attempt} of {job.max_attempts}"

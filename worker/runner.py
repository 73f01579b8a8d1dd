"""Runs one job the worker parent has claimed: train, record the outcome and cost.

Webhooks are not sent from here: the finishing transition writes them to the
outbox and a dispatcher sends them, so a job process never waits for a receiver.
"""

from __future__ import annotations

import logging
import time
import traceback
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter
from sqlalchemy.orm import Session

from core import attempts, jobs, result_files
from core.cost import attempt_charge
from core.db import run_with_retry
from core.errors import IllegalTransition
from core.models import Job
from core.queue import connect_redis, job_queue
from core.settings import Settings
from core.states import JobStatus
from trainer.config import Hyperparameters, RunSpec
from trainer.distributed import launch
from trainer.errors import TrainerError, TrainingStopped
from trainer.results import TrainResult
from worker.checkpoint_records import CheckpointRecorder
from worker.observability import JobWatch
from worker.reporting import DatabaseProgressWriter
from worker.stopping import Heartbeat, StopFlag, StopReason, stop_on_sigterm

log = logging.getLogger(__name__)


class RunOutcome(StrEnum):
    """How a job process ended, as ``worker.tasks.run_job`` reports it to RQ."""

    SUCCEEDED = JobStatus.SUCCEEDED.value
    FAILED = JobStatus.FAILED.value
    CANCELLED = JobStatus.CANCELLED.value
    REQUEUED = JobStatus.QUEUED.value
    PAUSED = JobStatus.PAUSED.value
    LOST = "lost"  # the job is no longer this worker's; nothing was written
    SKIPPED = "skipped"  # the claimed job was not (or no longer) this worker's to run


def is_retriable(exc: BaseException) -> bool:
    """Failures of the machine, not of the job, by type only: the trainer raises ``DeviceError`` for those."""
    return isinstance(exc, TrainerError) and exc.retriable


class JobRunner:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.database_url = settings.resolved_database_url
        self.worker_id = settings.worker_id or "worker-unregistered"

    def _db(self, work: Any) -> Any:
        """A database write that survives a short outage."""
        return run_with_retry(self.database_url, work, deadline_seconds=self.settings.database_retry_seconds)

    def run(self, job_id: str, gpus: list[int] | None = None) -> RunOutcome:
        """Run ``job_id``, which the worker parent claimed for this worker (on ``gpus``) before spawning us."""
        job: Job | None = self._db(lambda s: s.get(Job, job_id))
        if job is None or job.status != JobStatus.RUNNING or job.worker_id != self.worker_id:
            log.warning("job %s is not running on %s; nothing to do", job_id, self.worker_id)
            return RunOutcome.SKIPPED
        if gpus is not None:  # which of the host's GPUs, for whoever reads the job's history
            listed = ", ".join(map(str, gpus))
            self._db(lambda s: jobs.add_event(s, job_id, f"running on GPU {listed} of its host", data={"gpus": gpus}))
        watch = JobWatch(job, self.worker_id)
        outcome = "crashed"
        try:
            outcome = self._execute(job).value
            return RunOutcome(outcome)
        finally:
            watch.finished(outcome)

    def _execute(self, job: Job) -> RunOutcome:
        flag = StopFlag()
        stop_on_sigterm(flag)
        started = time.monotonic()
        heartbeat = Heartbeat(
            self.settings,
            job.id,
            flag,
            job.max_run_seconds,
            on_forced_stop=lambda r: self._forced_stop(job, started, r),
        )
        heartbeat.start()
        writer = DatabaseProgressWriter(self.database_url, job.id, job.attempt)
        try:
            # One process per GPU the parent reserved (CUDA_VISIBLE_DEVICES lists them); one GPU: train() itself.
            result = launch(
                self._spec(job),
                job.gpus,
                on_progress=writer,
                should_stop=flag.is_set,
                on_event=lambda line: self._db(lambda s: jobs.add_event(s, job.id, line)),
                on_checkpoint=CheckpointRecorder(self.settings, job.id),
            )
        except TrainingStopped as exc:
            return self._stopped(job, started, flag.reason, exc, writer)
        except Exception as exc:  # record it and keep the worker alive
            writer.flush(self.settings.database_retry_seconds)
            code = exc.code if isinstance(exc, TrainerError) else "internal_error"
            message = str(exc) if isinstance(exc, TrainerError) else f"{type(exc).__name__}: {exc}"
            if not isinstance(exc, TrainerError):
                log.exception("job %s crashed", job.id)
            if is_retriable(exc) and attempts.may_retry(job):
                return self._requeue(job, started, f"retriable failure ({code}): {message}")
            return self._finish(
                job,
                started,
                JobStatus.FAILED,
                f"failed: {message}",
                traceback.format_exc(),
                error_code=code,
                error_message=message,
            )
        finally:
            heartbeat.stop()
        writer.flush(self.settings.database_retry_seconds)
        env = result.environment
        return self._finish(
            job,
            started,
            JobStatus.SUCCEEDED,
            f"succeeded after {result.steps} steps; final loss {result.final_loss}",
            adapter_path=self._relative(result.adapter_dir),
            # resolved: "auto" replaced by the values that ran
            hyperparameters=TypeAdapter(Hyperparameters).dump_python(result.hyperparameters, mode="json"),
            result=self._result_summary(job, result),
            trained_tokens=result.trained_tokens,
            dtype=env.dtype,
            quantization=env.quantization,
        )

    def _relative(self, path: Path | None) -> str | None:
        return str(path.relative_to(self.settings.data_root)) if path is not None else None

    @staticmethod
    def _artifact(job: Job, path: Path | None) -> str | None:
        """A name within the job's output (``merged``, ``checkpoints/checkpoint-12``), as views show it."""
        return path.as_posix().split(f"/{job.id}/", 1)[-1] if path is not None else None

    def _result_summary(self, job: Job, result: TrainResult) -> dict[str, Any]:
        return {
            "steps": result.steps,
            "final_loss": result.final_loss,
            "final_eval_loss": result.final_eval_loss,
            "final_eval_token_accuracy": result.final_eval_token_accuracy,
            "samples": result.samples,
            "merged": self._artifact(job, result.merged_dir),
            "last_checkpoint": self._artifact(job, result.last_checkpoint),
        }

    def _stopped(
        self, job: Job, started: float, reason: StopReason | None, exc: TrainingStopped, writer: DatabaseProgressWriter
    ) -> RunOutcome:
        writer.flush(self.settings.database_retry_seconds)
        if reason is StopReason.LOST:
            log.warning("job %s was taken from this worker; leaving it alone", job.id)
            return RunOutcome.LOST
        if reason is StopReason.SHUTDOWN:
            saved = exc.checkpoint_dir.name if exc.checkpoint_dir else "no checkpoint"
            return self._requeue(job, started, f"worker shutting down; requeued ({saved})", graceful=True)
        if reason is StopReason.TIMEOUT:
            message = f"exceeded its time limit of {job.max_run_seconds}s; checkpoint kept"
            return self._finish(
                job, started, JobStatus.FAILED, f"failed: {message}", error_code="timeout", error_message=message
            )
        if reason is StopReason.PAUSE:
            saved = exc.checkpoint_dir.name if exc.checkpoint_dir else "no checkpoint"
            return self._pause(job, started, f"paused; GPU released ({saved})")
        return self._finish(job, started, JobStatus.CANCELLED, "cancelled; stopped at a step boundary")

    def _pause(self, job: Job, started: float, message: str) -> RunOutcome:
        # Like a graceful requeue, a pause is not the job's fault: it does not use up an attempt.
        wall = time.monotonic() - started  # measured once: a write retried through an outage must not charge it

        def pause(session: Session) -> Job:
            usage = self._usage(session, job, wall)
            return jobs.pause_stopped_job(session, job.id, message, self.worker_id, **attempts.refunded(), **usage)

        try:
            self._db(pause)
        except IllegalTransition as exc:
            log.warning("could not pause %s: %s", job.id, exc)
            return RunOutcome.LOST
        return RunOutcome.PAUSED

    def _forced_stop(self, job: Job, started: float, reason: StopReason) -> None:
        """Last words before the heartbeat thread ends a job process that will not stop."""
        if reason is StopReason.PAUSE:
            self._pause(job, started, "paused; did not stop in time, so killed (resumes from its last checkpoint)")
        elif reason is StopReason.CANCEL:
            self._finish(job, started, JobStatus.CANCELLED, "cancelled; the job did not stop in time and was killed")
        elif reason is StopReason.SHUTDOWN:
            self._requeue(job, started, "worker shutting down; the job did not stop in time and was killed")

    def _spec(self, job: Job) -> RunSpec:
        root = self.settings.data_root
        return RunSpec(
            base_model=job.base_model,
            train_file=root / job.training_path,
            validation_file=root / job.validation_path if job.validation_path else None,
            output_dir=self.settings.jobs_dir / job.id,
            hyperparameters=TypeAdapter(Hyperparameters).validate_python(job.hyperparameters),
            trust_remote_code=self.settings.trust_remote_code,
            tokenized_cache_dir=root / "cache" / "tokenized",
        )

    def _usage(self, session: Session, job: Job, wall: float) -> dict[str, Any]:
        """Cost of this attempt on the devices recorded at claim, added to what earlier attempts cost.

        Also told in the job's history, in the transaction that charges it: the job's totals add up every
        attempt, and a job on N GPUs pays N GPU-seconds per second.
        """
        charge = attempt_charge(self.settings, str(job.device), str(job.device_name), wall, job.gpus)
        message = f"charged {job.gpus} x {wall:.1f} s = {charge.gpu_seconds:.1f} GPU-seconds on {job.device_name}"
        data = {"gpus": job.gpus, "seconds": wall, "gpu_seconds": charge.gpu_seconds, "cost_usd": charge.cost_usd}
        jobs.add_event(session, job.id, message, data=data)
        return {"gpu_seconds": Job.gpu_seconds + charge.gpu_seconds, "cost_usd": Job.cost_usd + charge.cost_usd}

    def _requeue(self, job: Job, started: float, message: str, graceful: bool = False) -> RunOutcome:
        queue = job_queue(connect_redis(self.settings), self.settings)
        wall = time.monotonic() - started

        def requeue(session: Session) -> Job:
            # A graceful stop is not the job's fault: it does not use up an attempt.
            attempt = attempts.refunded() if graceful else {}
            return jobs.requeue_job(
                session,
                self.settings,
                queue,
                job.id,
                message,
                owner=self.worker_id,
                **attempt,
                **self._usage(session, job, wall),
            )

        try:
            self._db(requeue)
        except IllegalTransition as exc:
            log.warning("could not requeue %s: %s", job.id, exc)
            return RunOutcome.LOST
        return RunOutcome.REQUEUED

    def _finish(
        self, job: Job, started: float, status: JobStatus, message: str, details: str | None = None, **values: Any
    ) -> RunOutcome:
        wall = time.monotonic() - started

        def finish(session: Session) -> Job:
            usage = self._usage(session, job, wall)
            done = jobs.finish_job(session, job.id, status, message, owner=self.worker_id, **usage, **values)
            if status is JobStatus.SUCCEEDED:
                result_files.attach_metrics_csv(session, self.settings, done)
            if details and status is JobStatus.FAILED:
                jobs.add_event(session, job.id, "traceback", level="error", data={"traceback": details})
            return done

        try:
            self._db(finish)
        except IllegalTransition as exc:
            log.warning("could not finish %s: %s", job.id, exc)
            return RunOutcome.LOST
        return RunOutcome(status.value)

"""Runs one job: claim it, train, record the outcome and cost, notify."""

from __future__ import annotations

import logging
import socket
import time
import traceback
from pathlib import Path

from pydantic import TypeAdapter

from core import jobs
from core.cost import cost_usd
from core.db import transaction, utcnow
from core.models import Job
from core.settings import Settings
from core.states import JobStatus
from core.views import job_view
from core.webhooks import deliver, job_event
from trainer.config import Hyperparameters, RunSpec
from trainer.errors import TrainerError
from trainer.model_loading import pick_device
from trainer.results import TrainResult
from trainer.train import train
from worker.reporting import DatabaseProgressWriter

log = logging.getLogger(__name__)


class JobRunner:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.database_url = settings.resolved_database_url
        self.worker_id = settings.worker_id or f"{socket.gethostname()}.{id(self)}"

    def run(self, job_id: str) -> str:
        with transaction(self.database_url) as session:
            job = jobs.claim_job(session, job_id, self.worker_id)
        if job is None:
            # Duplicate message, or someone else has it, or it already ended: the row decides.
            log.info("job %s is not claimable; skipping the message", job_id)
            return "skipped"
        started = time.monotonic()
        try:
            result = train(self._spec(job), on_progress=DatabaseProgressWriter(self.database_url, job_id))
        except TrainerError as exc:
            return self._finish_failed(job_id, started, exc.code, str(exc))
        except Exception as exc:  # a bug or an unexpected library error: record it, keep the worker alive
            log.exception("job %s crashed", job_id)
            message = f"{type(exc).__name__}: {exc}"
            return self._finish_failed(job_id, started, "internal_error", message, traceback.format_exc())
        return self._finish_succeeded(job_id, started, result)

    def _spec(self, job: Job) -> RunSpec:
        root = self.settings.data_root
        return RunSpec(
            base_model=job.base_model,
            train_file=root / job.training_path,
            validation_file=root / job.validation_path if job.validation_path else None,
            output_dir=self.settings.jobs_dir / job.id,
            hyperparameters=TypeAdapter(Hyperparameters).validate_python(job.hyperparameters),
            trust_remote_code=self.settings.trust_remote_code,
        )

    def _cost_fields(self, started: float, device: str, device_name: str) -> dict[str, object]:
        seconds = time.monotonic() - started
        return {
            "gpu_seconds": seconds,
            "cost_usd": cost_usd(self.settings, device, device_name, seconds),
            "finished_at": utcnow(),
            "device": device,
            "device_name": device_name,
        }

    def _finish_succeeded(self, job_id: str, started: float, result: TrainResult) -> str:
        env = result.environment
        with transaction(self.database_url) as session:
            job = jobs.transition(
                session,
                job_id,
                JobStatus.SUCCEEDED,
                f"succeeded after {result.steps} steps; final loss {result.final_loss}",
                adapter_path=str(result.adapter_dir.relative_to(self.settings.data_root)),
                trained_tokens=result.trained_tokens,
                dtype=env.dtype,
                quantization=env.quantization,
                **self._cost_fields(started, env.device, env.device_name),
            )
        self._notify(job)
        return JobStatus.SUCCEEDED.value

    def _finish_failed(self, job_id: str, started: float, code: str, message: str, details: str | None = None) -> str:
        device, device_name = pick_device()
        with transaction(self.database_url) as session:
            job = jobs.transition(
                session,
                job_id,
                JobStatus.FAILED,
                f"failed: {message}",
                error_code=code,
                error_message=message,
                **self._cost_fields(started, device, device_name),
            )
            if details:
                jobs.add_event(session, job_id, "traceback", level="error", data={"traceback": details})
        self._notify(job)
        return JobStatus.FAILED.value

    def _notify(self, job: Job) -> None:
        if not job.webhook_url:
            return
        with transaction(self.database_url) as session:
            view = job_view(job, jobs.latest_metrics(session, job.id), Path(self.settings.data_root))
        outcome = deliver(
            job.webhook_url, job_event(view), self.settings.webhook_attempts, self.settings.webhook_timeout_seconds
        )
        with transaction(self.database_url) as session:
            jobs.add_event(
                session,
                job.id,
                "webhook delivered" if outcome.delivered else f"webhook failed: {outcome.error}",
                level="info" if outcome.delivered else "warning",
                data={"attempts": outcome.attempts, "status_code": outcome.status_code},
            )

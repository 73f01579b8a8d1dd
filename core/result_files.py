"""A finished job's results as files the Files API serves: its metrics as a CSV, like OpenAI's result file."""

from __future__ import annotations

import csv
import hashlib
import io

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.db import utcnow
from core.ids import FILE_PREFIX, new_id
from core.models import File, Job, JobMetric
from core.settings import Settings

RESULTS_PURPOSE = "fine-tune-results"
COLUMNS = (
    "attempt",
    "step",
    "epoch",
    "train_loss",
    "train_mean_token_accuracy",
    "valid_loss",
    "valid_mean_token_accuracy",
    "learning_rate",
    "trained_tokens",
    "created_at",
)


def _metrics_csv(session: Session, job_id: str) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    rows = session.scalars(select(JobMetric).where(JobMetric.job_id == job_id).order_by(JobMetric.id))
    for m in rows:
        writer.writerow(
            (
                m.attempt,
                m.step,
                m.epoch,
                m.loss,
                m.token_accuracy,
                m.eval_loss,
                m.eval_token_accuracy,
                m.learning_rate,
                m.trained_tokens,
                m.created_at.isoformat(),
            )
        )
    return out.getvalue().encode()


def attach_metrics_csv(session: Session, settings: Settings, job: Job) -> File:
    """Write the job's metrics CSV as a file of its tenant and list it in ``job.result_files``."""
    content = _metrics_csv(session, job.id)
    file_id = new_id(FILE_PREFIX)
    settings.files_dir.mkdir(parents=True, exist_ok=True)
    path = settings.files_dir / f"{file_id}.csv"
    path.write_bytes(content)
    record = File(
        id=file_id,
        tenant=job.tenant,
        filename=f"{job.id}-metrics.csv",
        purpose=RESULTS_PURPOSE,
        bytes=len(content),
        sha256=hashlib.sha256(content).hexdigest(),
        format="csv",
        line_count=content.count(b"\n"),
        example_count=0,
        path=str(path.relative_to(settings.data_root)),
        created_at=utcnow(),
    )
    session.add(record)
    job.result_files = [file_id]
    return record

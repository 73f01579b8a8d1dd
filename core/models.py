"""ORM models: the database is the source of truth for every job."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    PrimaryKeyConstraint,
    String,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from core.db import UTCDateTime, utcnow

JSONType = JSON().with_variant(JSONB(), "postgresql")
# SQLite only autoincrements INTEGER PRIMARY KEY, not BIGINT.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    pass


class File(Base):
    __tablename__ = "files"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(64), index=True)
    filename: Mapped[str] = mapped_column(String(255))
    purpose: Mapped[str] = mapped_column(String(32), default="fine-tune")
    bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    format: Mapped[str] = mapped_column(String(32))
    line_count: Mapped[int] = mapped_column(Integer)
    example_count: Mapped[int] = mapped_column(Integer)
    path: Mapped[str] = mapped_column(Text, doc="relative to the data root")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_tenant_created", "tenant", "created_at", "id"),
        Index("ix_jobs_status", "status"),
        Index("ix_jobs_tenant_started", "tenant", "started_at"),  # a tenant's last start, for round robin
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    base_model: Mapped[str] = mapped_column(Text)
    training_file: Mapped[str] = mapped_column(Text, doc="file id or path, as submitted")
    training_path: Mapped[str] = mapped_column(Text, doc="resolved, relative to the data root")
    validation_file: Mapped[str | None] = mapped_column(Text)
    validation_path: Mapped[str | None] = mapped_column(Text)
    hyperparameters: Mapped[dict[str, Any]] = mapped_column(JSONType)
    webhook_url: Mapped[str | None] = mapped_column(Text)
    user_metadata: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSONType)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    worker_id: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    step: Mapped[int] = mapped_column(Integer, default=0)
    total_steps: Mapped[int | None] = mapped_column(Integer)
    epoch: Mapped[float | None] = mapped_column(Float)
    trained_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    gpu_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    cost_usd: Mapped[float] = mapped_column(Float, default=0.0)
    device: Mapped[str | None] = mapped_column(String(32))
    device_name: Mapped[str | None] = mapped_column(String(128))
    dtype: Mapped[str | None] = mapped_column(String(16))
    quantization: Mapped[str | None] = mapped_column(String(16))
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    adapter_path: Mapped[str | None] = mapped_column(Text, doc="relative to the data root")
    result: Mapped[dict[str, Any] | None] = mapped_column(
        JSONType, doc="what the run produced besides the adapter: eval, samples, merged model"
    )
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime, doc="last sign of life of its run")
    cancel_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    pause_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    suffix: Mapped[str | None] = mapped_column(String(64), doc="part of the fine-tuned model's name")
    result_files: Mapped[list[str] | None] = mapped_column(JSONType, doc="file ids of the run's results (metrics CSV)")
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    max_run_seconds: Mapped[int | None] = mapped_column(Integer, doc="per-attempt limit on training time")
    estimate: Mapped[dict[str, Any] | None] = mapped_column(
        JSONType, doc="core.estimates.Estimate made at submit: tokens, steps, time, cost"
    )
    gpus: Mapped[int] = mapped_column(
        Integer, default=1, server_default=text("1"), doc="GPUs of one host it trains on, data-parallel"
    )
    # Kept current by core.jobs.record_progress, so reads join one row by primary key instead of searching
    # the job's metrics for the newest loss. Not a foreign key: metrics rows are deleted with their job.
    latest_metric_id: Mapped[int | None] = mapped_column(BigId, doc="the newest metrics row with a training loss")
    latest_metric: Mapped[JobMetric | None] = relationship(
        primaryjoin="foreign(Job.latest_metric_id) == JobMetric.id", viewonly=True
    )


# Hot paths (claim, reaper, reconciler, quotas) touch only active rows: these indexes stay small however many jobs
# have finished. Both hold the claim's order (priority DESC, then oldest): a tenant's best queued jobs, and
# everyone's, are the first entries of a scan, not a sort of every queued row (core.scheduling).
Index(
    "ix_jobs_active",
    Job.status,
    Job.tenant,
    Job.priority.desc(),
    Job.created_at,
    Job.id,
    postgresql_where=text("status IN ('queued', 'running')"),
    sqlite_where=text("status IN ('queued', 'running')"),
)
Index(
    "ix_jobs_queued_order",
    Job.priority.desc(),
    Job.created_at,
    Job.id,
    postgresql_where=text("status = 'queued'"),
    sqlite_where=text("status = 'queued'"),
)


class JobMetric(Base):
    """One logging step of a run; one query over job_id gives the loss curve."""

    __tablename__ = "job_metrics"
    __table_args__ = (Index("ix_job_metrics_job_step", "job_id", "step"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    attempt: Mapped[int | None] = mapped_column(Integer, doc="which run of the job wrote it")
    step: Mapped[int] = mapped_column(Integer)
    epoch: Mapped[float | None] = mapped_column(Float)
    loss: Mapped[float | None] = mapped_column(Float)
    eval_loss: Mapped[float | None] = mapped_column(Float)
    token_accuracy: Mapped[float | None] = mapped_column(Float)
    eval_token_accuracy: Mapped[float | None] = mapped_column(Float)
    eta_seconds: Mapped[float | None] = mapped_column(Float)
    learning_rate: Mapped[float | None] = mapped_column(Float)
    grad_norm: Mapped[float | None] = mapped_column(Float)
    tokens_per_second: Mapped[float | None] = mapped_column(Float)
    trained_tokens: Mapped[int | None] = mapped_column(BigInteger)
    peak_memory_bytes: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class JobEvent(Base):
    """Ordered, human-readable history of a job (status changes, decisions, warnings)."""

    __tablename__ = "job_events"
    __table_args__ = (Index("ix_job_events_job_id", "job_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    level: Mapped[str] = mapped_column(String(16), default="info")
    type: Mapped[str] = mapped_column(String(32), default="message")
    message: Mapped[str] = mapped_column(Text)
    data: Mapped[dict[str, Any] | None] = mapped_column(JSONType)


class Checkpoint(Base):
    """A checkpoint the trainer saved; ``deleted_at`` is set once retention removes its files."""

    __tablename__ = "checkpoints"
    __table_args__ = (Index("ix_checkpoints_job_step", "job_id", "step"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    step: Mapped[int] = mapped_column(Integer)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSONType, doc="the latest metrics at that step")
    bytes: Mapped[int] = mapped_column(BigInteger)
    path: Mapped[str] = mapped_column(Text, doc="relative to the data root")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Worker(Base):
    """A registered worker process (one per GPU); several hosts may share the table."""

    __tablename__ = "workers"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    gpu_index: Mapped[int | None] = mapped_column(Integer)
    gpu_name: Mapped[str | None] = mapped_column(String(128))
    gpu_memory_bytes: Mapped[int | None] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16), default="idle")
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    current_job_id: Mapped[str | None] = mapped_column(String(64))


class GpuReservation(Base):
    """One GPU of one host in use by a running job (core.gpu_reservations); the key forbids double use."""

    __tablename__ = "gpu_reservations"
    __table_args__ = (PrimaryKeyConstraint("host", "gpu_index"), Index("ix_gpu_reservations_job", "job_id"))

    host: Mapped[str] = mapped_column(String(255))
    gpu_index: Mapped[int] = mapped_column(Integer)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    worker_id: Mapped[str] = mapped_column(String(128), doc="the worker that claimed the job and releases its GPUs")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ApiKey(Base):
    """A tenant's API key; only its SHA-256 is kept (keys are 256-bit random, so a slow hash adds nothing)."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(64), index=True)
    name: Mapped[str | None] = mapped_column(String(128))
    prefix: Mapped[str] = mapped_column(String(16), unique=True, doc="the key's first characters, for lookup")
    sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class IdempotencyRecord(Base):
    """The first response to a POST with an Idempotency-Key, replayed for a retry with the same body."""

    __tablename__ = "idempotency_keys"

    tenant: Mapped[str] = mapped_column(String(64), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64), doc="SHA-256 of method, path and body")
    status_code: Mapped[int | None] = mapped_column(Integer, doc="None while the first request runs")
    headers: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    body: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class WebhookEndpoint(Base):
    """A URL a tenant registered for events; its secret signs every delivery to it."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(64), index=True)
    url: Mapped[str] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    event_types: Mapped[list[str] | None] = mapped_column(JSONType, doc="None: every event type")
    # Kept in the clear: signing needs the secret itself (as Svix and Stripe keep theirs).
    secret: Mapped[str] = mapped_column(String(128))
    previous_secret: Mapped[str | None] = mapped_column(String(128), doc="still signs until it expires")
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    disabled_reason: Mapped[str | None] = mapped_column(Text)


class TenantWebhookSecret(Base):
    """The secret that signs deliveries to a job's own ``webhook_url`` (one per tenant, made on first need)."""

    __tablename__ = "webhook_tenant_secrets"

    tenant: Mapped[str] = mapped_column(String(64), primary_key=True)
    secret: Mapped[str] = mapped_column(String(128))
    previous_secret: Mapped[str | None] = mapped_column(String(128))
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class WebhookDelivery(Base):
    """The outbox: one event for one endpoint, written with the state change, sent by a dispatcher."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
        Index("ix_webhook_deliveries_order", "job_id", "endpoint_id", "sequence"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(64))
    event_id: Mapped[str] = mapped_column(String(64), index=True, doc="the webhook-id header, same on every retry")
    event_type: Mapped[str] = mapped_column(String(64))
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    sequence: Mapped[int] = mapped_column(BigInteger, doc="order of the job's events: its status event's id")
    endpoint_id: Mapped[str | None] = mapped_column(
        ForeignKey("webhook_endpoints.id", ondelete="CASCADE"), doc="None: the job's own webhook_url"
    )
    url: Mapped[str] = mapped_column(Text)
    payload: Mapped[str] = mapped_column(Text, doc="the exact body that is signed and sent")
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, doc="while a dispatcher sends it")
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, doc="delivered, or failed for good")


class WebhookAttempt(Base):
    """One POST of a delivery: when, what the receiver answered, how long it took."""

    __tablename__ = "webhook_attempts"
    __table_args__ = (Index("ix_webhook_attempts_delivery", "delivery_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    delivery_id: Mapped[str] = mapped_column(ForeignKey("webhook_deliveries.id", ondelete="CASCADE"))
    attempted_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status_code: Mapped[int | None] = mapped_column(Integer)
    duration_ms: Mapped[int] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    dispatcher: Mapped[str | None] = mapped_column(String(128))

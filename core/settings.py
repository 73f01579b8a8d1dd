"""The one place settings come from: environment variables ``TUNEQ_*``."""

from __future__ import annotations

from enum import StrEnum
from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

# On-demand list prices in USD per GPU-hour, matched by substring of the CUDA
# device name; operators override them with TUNEQ_GPU_PRICES_PER_HOUR.
DEFAULT_GPU_PRICES_PER_HOUR: dict[str, float] = {
    "H200": 3.50,
    "H100": 2.50,
    "A100": 1.50,
    "L40S": 1.00,
    "A10G": 0.75,
    "L4": 0.50,
    "RTX 4090": 0.40,
    "T4": 0.35,
}


# Webhook retry schedule: the delay before each retry after a failed attempt. Svix's schedule (at once,
# then 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h) spans ~28 hours; four more 10 h retries stretch it to
# about three days (~68 h, 12 attempts), so a receiver down over a weekend night still gets its events.
# After the last the delivery has failed for good. Each delay gets +-20 % jitter; a longer Retry-After wins.
DEFAULT_WEBHOOK_RETRY_DELAYS_SECONDS: list[float] = [5.0, 300.0, 1800.0, 7200.0, 18000.0] + [36000.0] * 6


LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})


class AuthMode(StrEnum):
    REQUIRED = "required"  # every route but health and docs needs an API key
    DISABLED = "disabled"  # open, loopback only: one box, one user (never the default)


class TenantLimits(BaseModel):
    """Per-tenant quotas; ``None`` means unlimited."""

    max_queued_jobs: int | None = Field(default=100, ge=0, description="queued jobs; more answer 429")
    max_running_jobs: int | None = Field(default=None, ge=1, description="running at once; more wait in the queue")
    max_upload_bytes: int | None = Field(default=1 << 30, ge=1, description="size of one uploaded file")
    max_stored_bytes: int | None = Field(default=50 << 30, ge=0, description="all of a tenant's files together")


class LogFormat(StrEnum):
    TEXT = "text"
    JSON = "json"  # one JSON object per line, for log collectors


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TUNEQ_", env_file=".env", extra="ignore")

    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; unset = a SQLite file under the data root"
    )
    redis_url: str | None = Field(
        default=None, description="Redis URL; unset = an embedded redis-server on a socket under the data root"
    )
    database_pool_size: int = Field(
        default=20,
        ge=1,
        description="PostgreSQL connections kept open per process; at least api_max_concurrent_requests, so that "
        "an API under load reuses connections instead of opening and closing overflow ones per request",
    )
    database_max_overflow: int = Field(default=10, ge=0, description="extra connections opened under load")
    database_pool_timeout_seconds: float = Field(
        default=2.0, gt=0, description="wait for a free connection; then the API answers 503 with Retry-After"
    )
    data_root: Path = Field(default=Path(".tuneq"), description="uploaded files, adapters, checkpoints")
    queue_name: str = "tuneq"
    job_timeout_seconds: int = Field(default=7 * 24 * 3600, ge=60, description="hard limit on one job's run")
    gpu_prices_per_hour: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_GPU_PRICES_PER_HOUR))
    default_gpu_price_per_hour: float = Field(default=2.00, ge=0, description="for GPUs not in the price table")
    cpu_price_per_hour: float = Field(default=0.05, ge=0)
    estimate_gpu_name: str = Field(
        default="H100", description="the GPU cost estimates assume when no worker is live (matched like prices)"
    )
    estimate_gpu_memory_bytes: int = Field(
        default=80 * 2**30, ge=0, description="its memory, which sizes the 'auto' batch of an estimate"
    )
    webhook_timeout_seconds: float = Field(default=10.0, gt=0, description="one webhook POST, connect to answer")
    webhook_retry_delays_seconds: list[float] = Field(
        default_factory=lambda: list(DEFAULT_WEBHOOK_RETRY_DELAYS_SECONDS),
        description="delay before each webhook retry; its length + 1 is the number of attempts",
    )
    webhook_secret_overlap_seconds: float = Field(
        default=24 * 3600, ge=0, description="after a secret rotation, the old secret still signs this long"
    )
    webhook_dispatcher_threads: int = Field(default=8, ge=1, description="deliveries one dispatcher sends at once")
    webhook_poll_interval_seconds: float = Field(
        default=1.0, gt=0, description="how often an idle dispatcher looks for due deliveries"
    )
    trust_remote_code: bool = Field(default=False, description="let model repos run their own Python code")
    auth: AuthMode = Field(default=AuthMode.REQUIRED, description="'disabled' runs open, and only on loopback")
    open_tenant: str = Field(default="default", description="the tenant every request acts as when auth is disabled")
    tenant_limits: TenantLimits = Field(default_factory=TenantLimits, description="quotas of every tenant")
    tenant_limit_overrides: dict[str, TenantLimits] = Field(
        default_factory=dict, description='per-tenant quotas, e.g. {"acme": {"max_queued_jobs": 500}}'
    )
    model_roots: list[Path] | None = Field(
        default=None, description="directories base models may be loaded from; unset = <data root>/models"
    )
    base_model_allowlist: list[str] | None = Field(
        default=None, description="fnmatch patterns of hub ids jobs may name (e.g. 'Qwen/*'); unset = any"
    )
    allow_path_datasets: bool = Field(
        default=False, description="let jobs name dataset files under <data root>/tenants/<tenant>/datasets"
    )
    allow_private_webhooks: bool = Field(
        default=False, description="let webhooks reach loopback, private and link-local addresses"
    )
    api_max_concurrent_requests: int = Field(
        default=20,
        ge=1,
        description="requests being answered at once per API process (an answer that has started, such as an event "
        "stream or a download, no longer counts); more wait, then get 503",
    )
    api_max_concurrent_writes: int = Field(
        default=4,
        ge=1,
        description="writes (submit, estimate, cancel, pause, resume) running at once per API process; more wait, "
        "then get 503. Each is milliseconds of Python in a thread: more at once only contend for the GIL",
    )
    api_workers: int = Field(
        default=1, ge=1, description="API server processes on one port (uvicorn workers); about one per core"
    )
    api_access_log: bool = Field(
        default=False,
        description="one log line per request; off by default: request counts and latencies are in /metrics, "
        "and the line cost about a twentieth of a status read's CPU",
    )
    api_keep_alive_seconds: int = Field(
        default=65,
        ge=1,
        description="how long an idle keep-alive connection stays open; longer than the idle timeout of a load "
        "balancer in front (60 s on most), so the server never closes a connection a client is about to reuse",
    )
    api_max_queue_wait_seconds: float = Field(
        default=0.2,
        ge=0,
        description="how long a request may wait in all, from when it arrived (unread behind a busy event loop, for "
        "a free slot, for a write slot), before a 503 with "
        "Retry-After. Requests take milliseconds: past this the service is over capacity, and a quick 503 "
        "serves a client better than a slow answer (0.5 s let p99 reach 0.7-0.8 s at 200 clients)",
    )
    api_read_timeout_seconds: float = Field(
        default=5.0,
        gt=0,
        description="statement timeout of the reads GET requests run on the API's event loop (PostgreSQL); they "
        "are index lookups of milliseconds, and a read that hung would hold every request of its process",
    )
    max_request_body_bytes: int = Field(default=1 << 20, ge=1024, description="JSON request bodies; uploads excepted")
    idempotency_ttl_seconds: int = Field(default=24 * 3600, ge=60, description="how long an Idempotency-Key holds")
    heartbeat_interval_seconds: float = Field(default=5.0, gt=0, description="how often a running job beats")
    heartbeat_stale_seconds: float = Field(default=60.0, gt=0, description="silence after which a worker is lost")
    max_attempts: int = Field(default=3, ge=1, description="runs of a job before a lost worker fails it")
    max_run_seconds: int | None = Field(default=None, ge=1, description="default per-job training time limit")
    max_gpus_per_job: int = Field(
        default=8, ge=1, description="most GPUs (of one host) a job may ask for with `gpus`; more answer 422"
    )
    maintenance_interval_seconds: float = Field(default=10.0, gt=0, description="reaper/reconciler period")
    reconcile_after_seconds: float = Field(
        default=30.0, ge=0, description="queued this long with no message: re-enqueue"
    )
    run_maintenance_in_api: bool = Field(default=True, description="run the reaper/reconciler inside the API")
    cancel_grace_seconds: float = Field(default=60.0, gt=0, description="after this, a cancel kills the job process")
    graceful_stop_seconds: float = Field(default=120.0, gt=0, description="SIGTERM: time to checkpoint before a kill")
    database_retry_seconds: float = Field(default=300.0, ge=0, description="how long workers retry database writes")
    stream_poll_seconds: float = Field(default=0.5, gt=0, description="how often the API looks for new job events")
    stream_heartbeat_seconds: float = Field(default=15.0, gt=0, description="idle time before an SSE keepalive")
    worker_id: str | None = Field(default=None, description="set by `tuneq worker` for its job processes")
    auto_migrate: bool = Field(default=True, description="run Alembic migrations when the API starts")
    log_format: LogFormat = Field(default=LogFormat.TEXT, description="text, or json for log collectors")
    log_level: str = Field(default="INFO", description="the root logger's level")
    metrics_dir: Path | None = Field(
        default=None,
        description="prometheus multi-process files of this host's tuneq processes; local disk, never shared "
        "between hosts; unset = <data_root>/run/metrics",
    )
    metrics_port: int | None = Field(
        default=None, ge=1, le=65535, description="workers: serve /metrics on this port (+ GPU index under `workers`)"
    )
    readiness_timeout_seconds: float = Field(default=3.0, gt=0, description="per-dependency limit of /readyz")
    api_host: str = "127.0.0.1"
    api_port: int = 8000

    @property
    def webhook_lease_seconds(self) -> float:
        """How long a claimed delivery is a dispatcher's; past it, another may send it (the first died)."""
        return 2 * self.webhook_timeout_seconds + 30

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_root / 'tuneq.db').resolve()}"

    def check_bind(self, host: str) -> None:
        """Refuse to serve an open (unauthenticated) API anywhere but loopback."""
        if self.auth is AuthMode.DISABLED and host not in LOOPBACK_HOSTS:
            raise ValueError(
                f"TUNEQ_AUTH=disabled serves without API keys, so only on loopback, not on {host!r}; "
                "create keys (tuneq keys create) and unset TUNEQ_AUTH"
            )

    def limits_for(self, tenant: str) -> TenantLimits:
        return self.tenant_limit_overrides.get(tenant, self.tenant_limits)

    @property
    def resolved_model_roots(self) -> list[Path]:
        return [root.resolve() for root in (self.model_roots or [self.data_root / "models"])]

    def tenant_datasets_dir(self, tenant: str) -> Path:
        return self.data_root / "tenants" / tenant / "datasets"

    @property
    def resolved_metrics_dir(self) -> Path:
        return self.metrics_dir or self.data_root / "run" / "metrics"

    @property
    def files_dir(self) -> Path:
        return self.data_root / "files"

    @property
    def jobs_dir(self) -> Path:
        return self.data_root / "jobs"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()

"""The one place settings come from: environment variables ``TUNEQ_*``."""

from __future__ import annotations

from enum import StrEnum
from functools import lru_cache
from pathlib import Path

from pydantic import Field
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
    data_root: Path = Field(default=Path(".tuneq"), description="uploaded files, adapters, checkpoints")
    queue_name: str = "tuneq"
    job_timeout_seconds: int = Field(default=7 * 24 * 3600, ge=60, description="hard limit on one job's run")
    gpu_prices_per_hour: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_GPU_PRICES_PER_HOUR))
    default_gpu_price_per_hour: float = Field(default=2.00, ge=0, description="for GPUs not in the price table")
    cpu_price_per_hour: float = Field(default=0.05, ge=0)
    webhook_timeout_seconds: float = Field(default=10.0, gt=0)
    webhook_attempts: int = Field(default=3, ge=1)
    trust_remote_code: bool = Field(default=False, description="let model repos run their own Python code")
    max_upload_bytes: int = Field(default=1 << 30, ge=1)
    heartbeat_interval_seconds: float = Field(default=5.0, gt=0, description="how often a running job beats")
    heartbeat_stale_seconds: float = Field(default=60.0, gt=0, description="silence after which a worker is lost")
    max_attempts: int = Field(default=3, ge=1, description="runs of a job before a lost worker fails it")
    max_run_seconds: int | None = Field(default=None, ge=1, description="default per-job training time limit")
    maintenance_interval_seconds: float = Field(default=10.0, gt=0, description="reaper/reconciler period")
    reconcile_after_seconds: float = Field(
        default=30.0, ge=0, description="queued this long with no message: re-enqueue"
    )
    run_maintenance_in_api: bool = Field(default=True, description="run the reaper/reconciler inside the API")
    cancel_grace_seconds: float = Field(default=60.0, gt=0, description="after this, a cancel kills the job process")
    graceful_stop_seconds: float = Field(default=120.0, gt=0, description="SIGTERM: time to checkpoint before a kill")
    database_retry_seconds: float = Field(default=300.0, ge=0, description="how long workers retry database writes")
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
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_root / 'tuneq.db').resolve()}"

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

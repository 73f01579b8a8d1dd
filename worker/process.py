"""A worker process pinned to one GPU, running an RQ worker.

CUDA_VISIBLE_DEVICES is set before anything imports torch. Each job runs in a
freshly spawned process (RQ's SpawnWorker, posix_spawn rather than fork): a
forked child of a process that touched CUDA breaks, and a fresh process gives
every job all of the GPU's memory back when it ends. This parent never
imports torch.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import threading
from types import FrameType
from typing import Any

from rq.worker import SpawnWorker
from sqlalchemy.exc import SQLAlchemyError

from core import workers
from core.db import transaction
from core.logs import bind_worker
from core.metrics.multiprocess import use_multiprocess_dir
from core.queue import connect_redis, job_queue
from core.settings import Settings, get_settings

log = logging.getLogger(__name__)


def worker_name(gpu: int | None) -> str:
    device = f"gpu{gpu}" if gpu is not None else "cpu"
    return f"{socket.gethostname()}.{os.getpid()}.{device}"


def pin_device(gpu: int | None) -> None:
    """Make only ``gpu`` visible to this process and its job processes (none for a CPU worker)."""
    os.environ["CUDA_VISIBLE_DEVICES"] = "" if gpu is None else str(gpu)


def describe_gpu(gpu: int | None) -> tuple[str | None, int | None]:
    """(name, memory in bytes) from nvidia-smi, without creating a CUDA context here."""
    if gpu is None or shutil.which("nvidia-smi") is None:
        return None, None
    query = ["nvidia-smi", f"--id={gpu}", "--query-gpu=name,memory.total", "--format=csv,noheader,nounits"]
    try:
        name, mib = subprocess.run(query, capture_output=True, text=True, timeout=10, check=True).stdout.split(", ")
        return name.strip(), int(mib) * 1024 * 1024
    except (subprocess.SubprocessError, ValueError, OSError):
        return None, None


class TuneqWorker(SpawnWorker):
    """RQ's SpawnWorker plus a database heartbeat and a graceful stop that checkpoints.

    RQ's own warm shutdown waits for the job to end, which for a fine-tune may
    be hours away, and its cold shutdown kills the job with no checkpoint. So a
    first SIGTERM is also forwarded to the job process, which checkpoints at
    its next step and puts the job back on the queue; the kill stays as the
    fallback after ``graceful_stop_seconds``.
    """

    @property
    def tuneq_settings(self) -> Settings:
        # From the environment: RQ rebuilds this object inside each job process without our attributes.
        return get_settings()

    def request_stop(self, signum: int, frame: FrameType | None) -> None:
        horse = self.horse_pid
        if horse:
            log.info("forwarding SIGTERM to job process %d for a checkpoint and requeue", horse)
            with contextlib.suppress(ProcessLookupError):
                os.kill(horse, signal.SIGTERM)
            timer = threading.Timer(self.tuneq_settings.graceful_stop_seconds + 10, self.kill_horse)
            timer.daemon = True
            timer.start()
        super().request_stop(signum, frame)

    def heartbeat(self, *args: Any, **kwargs: Any) -> None:
        super().heartbeat(*args, **kwargs)
        try:
            with transaction(self.tuneq_settings.resolved_database_url) as session:
                workers.beat(session, self.name)
        except SQLAlchemyError as exc:
            log.warning("worker heartbeat not recorded: %s", exc)


def run_worker(settings: Settings, gpu: int | None, burst: bool = False) -> None:
    pin_device(gpu)
    name = worker_name(gpu)
    # Job processes read their settings from the environment they inherit.
    os.environ["TUNEQ_WORKER_ID"] = name
    use_multiprocess_dir(settings)  # inherited by the job processes, whose counters the scrape adds up
    bind_worker(name)
    from worker.metrics_server import serve_worker_metrics  # imports prometheus_client: after the line above

    serve_worker_metrics(settings, gpu, name)
    gpu_name, gpu_memory = describe_gpu(gpu)
    identity = workers.WorkerIdentity(name, socket.gethostname(), os.getpid(), gpu, gpu_name, gpu_memory)
    with transaction(settings.resolved_database_url) as session:
        workers.register_worker(session, identity)
    redis = connect_redis(settings)
    worker = TuneqWorker([job_queue(redis, settings)], connection=redis, name=name)
    try:
        worker.work(burst=burst, logging_level="INFO")
    finally:
        with transaction(settings.resolved_database_url) as session:
            workers.beat(session, name, status="stopped")

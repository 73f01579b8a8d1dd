"""A worker process pinned to one GPU, running an RQ worker.

CUDA_VISIBLE_DEVICES is set before anything imports torch. Each job runs in a
freshly spawned process (RQ's SpawnWorker, posix_spawn rather than fork): a
forked child of a process that touched CUDA breaks, and a fresh process gives
every job all of the GPU's memory back when it ends.
"""

from __future__ import annotations

import os
import socket

from rq.worker import SpawnWorker

from core.queue import connect_redis, job_queue
from core.settings import Settings


def worker_name(gpu: int | None) -> str:
    device = f"gpu{gpu}" if gpu is not None else "cpu"
    return f"{socket.gethostname()}.{os.getpid()}.{device}"


def pin_device(gpu: int | None) -> None:
    """Make only ``gpu`` visible to this process and its job processes (none for a CPU worker)."""
    os.environ["CUDA_VISIBLE_DEVICES"] = "" if gpu is None else str(gpu)


def run_worker(settings: Settings, gpu: int | None, burst: bool = False) -> None:
    pin_device(gpu)
    name = worker_name(gpu)
    # Job processes read their settings from the environment they inherit.
    os.environ["TUNEQ_WORKER_ID"] = name
    redis = connect_redis(settings)
    worker = SpawnWorker([job_queue(redis, settings)], connection=redis, name=name)
    worker.work(burst=burst, logging_level="INFO")

"""A worker process pinned to one GPU, running an RQ worker.

CUDA_VISIBLE_DEVICES is set before anything imports torch. The parent claims
a job in the database when a message arrives (worker.claiming) and only then
spawns a fresh process for exactly that job (RQ's SpawnWorker, posix_spawn
rather than fork): a forked child of a process that touched CUDA breaks, and a
fresh process gives every job all of the GPU's memory back when it ends. A
message with nothing to claim is dropped without a process. This parent never
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
from collections.abc import Iterator
from types import FrameType
from typing import Any

from redis.exceptions import RedisError
from rq import Queue
from rq.exceptions import StopRequested
from rq.job import Job as RQJob
from rq.worker import SpawnWorker
from sqlalchemy.exc import SQLAlchemyError

from core import workers
from core.db import transaction
from core.gpu_reservations import WorkerGpus
from core.logs import bind_worker
from core.metrics.multiprocess import use_multiprocess_dir
from core.queue import connect_redis, job_queue
from core.settings import Settings, get_settings
from core.workers import WorkerStatus
from worker.claiming import Claim, ClaimKeeper, Device, claim_for_message, release_after_job_process
from worker.pinning import pin_gpus

log = logging.getLogger(__name__)

REDIS_RETRY_MAX_SECONDS = 5.0  # backoff cap while Redis is away: it comes back within seconds of a restart


def worker_name(gpu: int | None) -> str:
    device = f"gpu{gpu}" if gpu is not None else "cpu"
    return f"{socket.gethostname()}.{os.getpid()}.{device}"


def pin_device(gpu: int | None) -> None:
    """Make only ``gpu`` visible to this process and its job processes (none for a CPU worker)."""
    pin_gpus([] if gpu is None else [gpu])


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

    # Set by run_worker in the parent; the job process rebuilds this object without them and never claims.
    device: Device = Device.of(None)
    gpus: WorkerGpus | None = None  # its own GPU among its host's; None for a CPU worker

    @property
    def tuneq_settings(self) -> Settings:
        # From the environment: RQ rebuilds this object inside each job process without our attributes.
        return get_settings()

    def execute_job(self, job: RQJob, queue: Queue) -> None:
        """Claim first, then spawn: the job process is handed the id the parent claimed."""
        settings = self.tuneq_settings
        self._job_process_started = False
        claimed: Claim | None = None
        keeper: ClaimKeeper | None = None
        try:
            with self._stop_deferred():
                claimed = self._claim(job)
                if claimed is None:
                    self._drop_message(job, queue)
                    return
                named = job.args[0]  # reading the args also loads the rest of the message, which save() rewrites
                if named != claimed.job_id:
                    log.info("message for %s claimed %s (scheduling policy)", named, claimed.job_id)
                # Exactly this job on these GPUs; the message may have named another (see docs/architecture.md).
                job.args = [claimed.job_id, claimed.gpus]
                job.description = f"fine-tune {claimed.job_id}"
                job.save(include_meta=False)
                if self._stop_pending:
                    return  # the block raises the stop; the claim is handed back below
            keeper = ClaimKeeper(settings, claimed.job_id, self.name)
            keeper.start()
            super().execute_job(job, queue)
        finally:
            if keeper is not None:
                keeper.stop()
            if claimed is not None:
                self._after_claim(job, queue, claimed)

    def fork_work_horse(self, job: RQJob, queue: Queue) -> None:
        super().fork_work_horse(job, queue)
        self._job_process_started = True

    def _after_claim(self, job: RQJob, queue: Queue, claimed: Claim) -> None:
        """Clean up after the job process, or, if a stop came before there was one, hand the job back.

        A job process that failed to start is treated as one that died: it uses up an attempt, so a host that
        cannot start any fails its jobs in the end instead of requeueing them forever.
        """
        stopped_before_start = self.stop_signalled and not self._job_process_started
        with self._stop_deferred():
            release_after_job_process(self.tuneq_settings, self.name, claimed.job_id, stopped_before_start)
            if stopped_before_start:
                self._drop_message(job, queue)

    def _claim(self, job: RQJob) -> Claim | None:
        try:
            claimed = claim_for_message(self.tuneq_settings, self.name, self.device, self.gpus)
        except SQLAlchemyError:
            # The job stays queued in the database; the reconciler sends it a new message.
            log.exception("could not claim for message %s; dropping it", job.id)
            return None
        if claimed is None:
            log.info("nothing to claim for message %s; dropped without a job process", job.id)
        return claimed

    def _drop_message(self, job: RQJob, queue: Queue) -> None:
        """Forget a dequeued message that started no work (RQ parks it in an intermediate list)."""
        with self.connection.pipeline() as pipe:
            pipe.lrem(queue.intermediate_queue_key, 1, job.id)
            job.delete(pipeline=pipe, remove_from_queue=False)
            pipe.execute()

    # A stop signal arrived: the loop in serve_until_stopped must end, not reconnect.
    stop_signalled = False
    _deferring_stop = False  # the main thread is in database work a stop must not cut (_stop_deferred)
    _stop_pending = False  # a stop came meanwhile: StopRequested is raised once that work is done
    _job_process_started = False  # for the message in hand (execute_job)

    @contextlib.contextmanager
    def _stop_deferred(self) -> Iterator[None]:
        """Database work that a stop signal must not cut: a stop that comes meanwhile takes effect after it.

        RQ's handler raises StopRequested wherever the main thread is when an idle worker gets SIGTERM.
        Raised inside a transaction, it left the connection half-read; the session's cleanup then failed,
        and its SQLAlchemyError, caught as a failed heartbeat or claim, replaced the stop: the worker served on
        until it was killed, and its row never said stopped.
        """
        self._deferring_stop = True
        try:
            yield
        finally:
            self._deferring_stop = False
        if self._stop_pending:
            self._stop_pending = False
            raise StopRequested

    def request_stop(self, signum: int, frame: FrameType | None) -> None:
        self.stop_signalled = True
        horse = self.horse_pid
        if horse:
            log.info("forwarding SIGTERM to job process %d for a checkpoint and requeue", horse)
            with contextlib.suppress(ProcessLookupError):
                os.kill(horse, signal.SIGTERM)
            timer = threading.Timer(self.tuneq_settings.graceful_stop_seconds + 10, self.kill_horse)
            timer.daemon = True
            timer.start()
        try:
            super().request_stop(signum, frame)
        except StopRequested:
            if not self._deferring_stop:
                raise
            self._stop_pending = True

    def heartbeat(self, *args: Any, **kwargs: Any) -> None:
        super().heartbeat(*args, **kwargs)
        with self._stop_deferred():
            try:
                with transaction(self.tuneq_settings.resolved_database_url) as session:
                    workers.beat(session, self.name)
            except SQLAlchemyError as exc:
                log.warning("worker heartbeat not recorded: %s", exc)


def build_worker(settings: Settings, name: str, device: Device, gpus: WorkerGpus | None = None) -> TuneqWorker:
    """An RQ worker on the tuneq queue; its job processes find their worker id in TUNEQ_WORKER_ID."""
    redis = connect_redis(settings)
    worker = TuneqWorker([job_queue(redis, settings)], connection=redis, name=name)
    worker.device, worker.gpus = device, gpus
    return worker


def worker_gpus(gpu: int | None, host_gpus: list[int] | None) -> WorkerGpus | None:
    """Its place on the host: alone, a GPU worker lends to and borrows from no one."""
    if gpu is None:
        return None
    return WorkerGpus(socket.gethostname(), gpu, tuple(host_gpus or [gpu]))


def run_worker(settings: Settings, gpu: int | None, burst: bool = False, host_gpus: list[int] | None = None) -> None:
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
    try:
        serve_until_stopped(settings, name, Device.of(gpu_name), worker_gpus(gpu, host_gpus), burst)
    finally:
        with transaction(settings.resolved_database_url) as session:
            workers.beat(session, name, status=WorkerStatus.STOPPED)


def serve_until_stopped(settings: Settings, name: str, device: Device, gpus: WorkerGpus | None, burst: bool) -> None:
    """Run the RQ worker; when Redis goes away, wait for it with backoff and start again instead of exiting.

    RQ's work loop retries a lost connection only while it waits for a
    message; elsewhere (the heartbeat after a job, registering at start) a
    connection error ends ``work()``. Only a stop signal, or burst mode, ends this loop.
    """
    stopping = threading.Event()
    while not stopping.is_set():
        if not wait_for_redis(settings, stopping):
            return
        worker = build_worker(settings, name, device, gpus)
        try:
            worker.work(burst=burst, logging_level="INFO")
        except RedisError as exc:
            log.warning("worker lost Redis (%s); reconnecting", exc)
        if burst or worker.stop_signalled:
            return
        log.warning("worker loop ended without a stop request; starting again once Redis answers")


def wait_for_redis(settings: Settings, stopping: threading.Event) -> bool:
    """Block until Redis answers (True) or SIGTERM/SIGINT arrives (False); no job process is running here."""

    def stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        delay = 0.1
        while not stopping.is_set():
            try:
                connect_redis(settings).ping()
                break
            except (RedisError, OSError) as exc:
                log.warning("Redis is not answering (%s); trying again in %.1fs", exc, delay)
            stopping.wait(delay)
            delay = min(delay * 2, REDIS_RETRY_MAX_SECONDS)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    # A stop that came while Redis answered the ping must not start the RQ worker: no one would ask it again (a
    # fleet stopping a worker it had just restarted waited for it forever). From here until RQ sets its own
    # handlers, a SIGTERM ends the process by default, which is a stop too.
    return not stopping.is_set()

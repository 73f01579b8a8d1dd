"""``tuneq workers``: one pinned worker process per GPU, restarted when one dies.

Each worker is told every GPU of the fleet (``--host-gpus``), so a job asking
for ``gpus: N`` can be claimed by one of them and borrow N-1 idle GPUs of the
others (core.gpu_reservations).
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from types import FrameType

log = logging.getLogger(__name__)

RESTART_BACKOFF_MAX = 60.0


def visible_gpus() -> list[int]:
    """GPU indices to serve: CUDA_VISIBLE_DEVICES if set, else every GPU nvidia-smi lists."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [int(part) for part in listed.split(",") if part.strip().isdigit()]
    if shutil.which("nvidia-smi") is None:
        return []
    out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, check=False).stdout
    return list(range(sum(1 for line in out.splitlines() if line.startswith("GPU "))))


@dataclass
class Slot:
    gpu: int | None
    host_gpus: tuple[int, ...] = ()  # every GPU this fleet serves, lent to each other for multi-GPU jobs
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    next_start: float = 0.0

    def start(self) -> None:
        args = [sys.executable, "-m", "tuneq", "worker"]
        if self.gpu is not None:
            args += ["--gpu", str(self.gpu), "--host-gpus", ",".join(map(str, self.host_gpus or (self.gpu,)))]
        self.process = subprocess.Popen(args)
        log.info("started worker for %s (pid %d)", self.label, self.process.pid)

    @property
    def label(self) -> str:
        return "cpu" if self.gpu is None else f"gpu {self.gpu}"


@dataclass
class Fleet:
    slots: list[Slot]
    stopping: bool = False

    def stop(self, signum: int, frame: FrameType | None) -> None:
        self.stopping = True
        for slot in self.slots:
            if slot.process and slot.process.poll() is None:
                slot.process.send_signal(signal.SIGTERM)

    def supervise(self, poll_seconds: float = 1.0) -> None:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)
        for slot in self.slots:
            slot.start()
        while not self.stopping:
            now = time.monotonic()
            for slot in self.slots:
                if slot.process is not None and slot.process.poll() is not None:
                    slot.restarts += 1
                    delay = min(2.0**slot.restarts, RESTART_BACKOFF_MAX)
                    log.warning(
                        "worker for %s exited (%s); restarting in %.0fs", slot.label, slot.process.returncode, delay
                    )
                    slot.process, slot.next_start = None, now + delay
                if slot.process is None and now >= slot.next_start:
                    slot.start()
            time.sleep(poll_seconds)
        for slot in self.slots:
            if slot.process is not None:
                slot.process.wait()


def run_fleet(gpus: list[int] | None) -> None:
    chosen = gpus if gpus is not None else visible_gpus()
    slots = [Slot(gpu, tuple(chosen)) for gpu in chosen] or [Slot(None)]  # no GPU: one CPU worker
    Fleet(slots).supervise()

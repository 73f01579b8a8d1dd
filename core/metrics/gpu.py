"""GPU memory and utilisation from NVML at scrape time (nvidia-ml-py; no nvidia-smi text parsing).

NVML reads the driver without creating a CUDA context, so a worker's parent
process can report on its GPU while the job process trains on it. Where there
is no NVIDIA driver the collector reports nothing.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator, Sequence
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)


def _nvml() -> Any | None:
    """The initialised NVML module, or None without an NVIDIA driver."""
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception as exc:  # ImportError, or NVMLError when the driver library is missing
        log.info("NVML not available, no GPU metrics: %s", exc)
        return None
    return pynvml


class NvmlCollector(Collector):
    def __init__(self, gpu_indices: Sequence[int] | None, worker_id: str = "") -> None:
        """Report ``gpu_indices`` (NVML numbering, which ignores CUDA_VISIBLE_DEVICES), or every GPU if None."""
        self.gpu_indices = gpu_indices
        self.worker_id = worker_id
        self.host = socket.gethostname()
        self.nvml = _nvml()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        nvml = self.nvml
        if nvml is None:
            return
        labels = ["host", "gpu", "gpu_name", "worker"]
        used = GaugeMetricFamily("tuneq_gpu_memory_used_bytes", "GPU memory in use", labels=labels)
        total = GaugeMetricFamily("tuneq_gpu_memory_total_bytes", "GPU memory installed", labels=labels)
        busy = GaugeMetricFamily("tuneq_gpu_utilization_ratio", "Share of time the GPU was busy (0-1)", labels=labels)
        indices = self.gpu_indices if self.gpu_indices is not None else range(nvml.nvmlDeviceGetCount())
        for index in indices:
            try:
                handle = nvml.nvmlDeviceGetHandleByIndex(index)
                memory = nvml.nvmlDeviceGetMemoryInfo(handle)
                utilization = nvml.nvmlDeviceGetUtilizationRates(handle)
                name = nvml.nvmlDeviceGetName(handle)
            except nvml.NVMLError as exc:
                log.warning("NVML could not read GPU %d: %s", index, exc)
                continue
            values = [self.host, str(index), name if isinstance(name, str) else name.decode(), self.worker_id]
            used.add_metric(values, memory.used)
            total.add_metric(values, memory.total)
            busy.add_metric(values, utilization.gpu / 100.0)
        yield from (used, total, busy)

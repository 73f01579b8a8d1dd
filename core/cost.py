"""What a run costs: GPU-seconds times the configured hourly price of that device.

A job on N GPUs uses N GPU-seconds per second of its run.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.settings import Settings


def price_per_hour(settings: Settings, device: str, device_name: str) -> float:
    if device != "cuda":
        return settings.cpu_price_per_hour
    # Longest key first, so "H100 NVL" style names match "H100" and "L40S" beats "L4".
    for key in sorted(settings.gpu_prices_per_hour, key=len, reverse=True):
        if key.lower() in device_name.lower():
            return settings.gpu_prices_per_hour[key]
    return settings.default_gpu_price_per_hour


def cost_usd(settings: Settings, device: str, device_name: str, gpu_seconds: float) -> float:
    return round(gpu_seconds / 3600.0 * price_per_hour(settings, device, device_name), 6)


@dataclass(frozen=True)
class Charge:
    gpu_seconds: float
    cost_usd: float


def attempt_charge(settings: Settings, device: str, device_name: str, wall_seconds: float, gpus: int) -> Charge:
    """What one attempt costs: it held ``gpus`` devices for ``wall_seconds``, and each of them is paid for."""
    used = wall_seconds * gpus
    return Charge(used, cost_usd(settings, device, device_name, used))

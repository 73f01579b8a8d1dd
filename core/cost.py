"""What a run costs: GPU-seconds times the configured hourly price of that device."""

from __future__ import annotations

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

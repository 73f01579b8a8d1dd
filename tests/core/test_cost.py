from __future__ import annotations

import pytest

from core.cost import cost_usd, price_per_hour
from core.settings import Settings


def test_gpu_price_is_matched_by_device_name() -> None:
    settings = Settings(gpu_prices_per_hour={"H100": 2.5, "L4": 0.5, "L40S": 1.0}, default_gpu_price_per_hour=9.0)
    assert price_per_hour(settings, "cuda", "NVIDIA H100 80GB HBM3") == 2.5
    assert price_per_hour(settings, "cuda", "NVIDIA L40S") == 1.0  # not the shorter "L4"
    assert price_per_hour(settings, "cuda", "Some Future GPU") == 9.0
    assert price_per_hour(settings, "cpu", "cpu") == settings.cpu_price_per_hour


def test_cost_is_seconds_times_hourly_price() -> None:
    settings = Settings(gpu_prices_per_hour={"H200": 3.6})
    assert cost_usd(settings, "cuda", "NVIDIA H200", 1800) == pytest.approx(1.8)
    assert cost_usd(settings, "cpu", "cpu", 3600) == pytest.approx(settings.cpu_price_per_hour)

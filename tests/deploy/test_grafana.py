"""The Grafana dashboard only charts series that tuneq exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "tuneq-dashboard.json"
METRICS_SOURCE = Path(__file__).resolve().parents[2] / "core" / "metrics"


def _exported() -> set[str]:
    """Every family tuneq defines (a histogram's series add _bucket/_sum/_count, a counter's _total)."""
    return {name for path in METRICS_SOURCE.glob("*.py") for name in re.findall(r'"(tuneq_\w+)"', path.read_text())}


def _family(series: str) -> str:
    return re.sub(r"_(bucket|sum|count|total)$", "", series)


def test_dashboard_charts_only_exported_metrics_and_all_of_them() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    expressions = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    used = {_family(name) for expr in expressions for name in re.findall(r"\btuneq_\w+", expr)}
    assert used == _exported()

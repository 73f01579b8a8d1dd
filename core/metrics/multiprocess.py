"""Turn on prometheus_client's multi-process mode for this process and the ones it starts.

prometheus_client picks its value storage when it is first imported, from the
PROMETHEUS_MULTIPROC_DIR environment variable (its documented protocol), so
this has to run before that import; child processes inherit the variable.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from core.settings import Settings

ENV_VAR = "PROMETHEUS_MULTIPROC_DIR"


def use_multiprocess_dir(settings: Settings) -> Path:
    """Make this process (and its children) record metrics into the host's metrics directory."""
    directory = settings.resolved_metrics_dir.resolve()
    if "prometheus_client" in sys.modules and active_multiprocess_dir() != directory:
        raise RuntimeError("prometheus_client was imported before the metrics directory was chosen")
    directory.mkdir(parents=True, exist_ok=True)
    os.environ[ENV_VAR] = str(directory)
    return directory


def active_multiprocess_dir() -> Path | None:
    """The directory this process records into, or None when its metrics live only in its memory."""
    value = os.environ.get(ENV_VAR)
    return Path(value).resolve() if value else None

"""How uvicorn serves the API: the options ``tuneq api`` runs with, and the tests' in-process servers too."""

from __future__ import annotations

from typing import Any

from core.settings import Settings


def server_options(settings: Settings) -> dict[str, Any]:
    return {
        "access_log": settings.api_access_log,
        "timeout_keep_alive": settings.api_keep_alive_seconds,
        "timeout_graceful_shutdown": 5,  # open event streams would otherwise hold a shutdown forever
        # Python's own event loop, not uvloop: reads run on the loop (api.deps.Reader), and with every core busy
        # uvloop served some connections for seconds while others waited (200 clients at the same throughput:
        # p99 6.3 s on uvloop, 0.16 s on asyncio; BENCHMARKS.md).
        "loop": "asyncio",
    }

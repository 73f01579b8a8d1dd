"""How uvicorn serves the API: the options ``tuneq api`` runs with, and the tests' in-process servers too."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from core.settings import Settings


class NoDelayHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, with Nagle's algorithm off on every connection.

    asyncio turns Nagle off only on sockets created with the TCP protocol
    number, and the listening socket uvicorn shares among several worker
    processes has none; uvloop turns it off on any TCP socket. Without it a
    response's headers and body left as two small writes, the second held
    back until the client's delayed ACK: about 40 ms per request with
    ``TUNEQ_API_WORKERS`` > 1 (BENCHMARKS.md).
    """

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().connection_made(transport)


def server_options(settings: Settings) -> dict[str, Any]:
    return {
        "access_log": settings.api_access_log,
        "timeout_keep_alive": settings.api_keep_alive_seconds,
        "timeout_graceful_shutdown": 5,  # open event streams would otherwise hold a shutdown forever
        # Python's own event loop, not uvloop: reads run on the loop (api.deps.Reader), and with every core busy
        # uvloop served some connections for seconds while others waited (200 clients at the same throughput:
        # p99 6.3 s on uvloop, 0.16 s on asyncio; BENCHMARKS.md).
        "loop": "asyncio",
        "http": f"{__name__}:{NoDelayHttpProtocol.__name__}",  # an import string: worker processes load it
    }

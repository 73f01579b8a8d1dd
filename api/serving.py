"""How uvicorn serves the API: the options ``tuneq api`` runs with, and the tests' in-process servers too."""

from __future__ import annotations

import asyncio
import selectors
import socket
import sys
import time
from dataclasses import dataclass
from typing import Any, cast

from uvicorn import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from api.load_shedding import FOUND_ALONE, UNREAD_SINCE
from core.settings import Settings


class TimedSelector(selectors.DefaultSelector):
    """The loop's selector, remembering since when the input it last returned may have waited unread.

    Input found by a look that returned at once arrived after the look before it returned: it waited in the
    kernel while the loop ran that round's work. Input a look waited for arrived while it waited.
    """

    WAITED = 0.001  # a look that took longer than this waited for its input

    def __init__(self) -> None:
        super().__init__()
        self.unread_since = self._returned = time.monotonic()
        self.found_alone = True  # the last look found one socket ready: no other input waited with it

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        called = time.monotonic()
        ready: list[tuple[selectors.SelectorKey, int]] = super().select(timeout)
        returned = time.monotonic()
        self.unread_since = called if returned - called > self.WAITED else self._returned
        self._returned = returned
        self.found_alone = len(ready) <= 1
        return ready


class TimedEventLoop(asyncio.SelectorEventLoop):
    """asyncio's own loop on a ``TimedSelector``: requests know how long they waited before it read them."""

    def __init__(self) -> None:
        self.timed_selector = TimedSelector()
        super().__init__(self.timed_selector)


class NoDelayHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, with Nagle's algorithm off on every connection.

    asyncio turns Nagle off only on sockets created with the TCP protocol
    number, and the listening socket uvicorn shares among several worker
    processes has none; uvloop turns it off on any TCP socket. Without it a
    response's headers and body left as two small writes, the second held
    back until the client's delayed ACK: about 40 ms per request with
    ``TUNEQ_API_WORKERS`` > 1 (BENCHMARKS.md).
    """

    answered_at = float("-inf")  # when this connection's last answer was complete (on_message_begin)

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().connection_made(transport)

    def on_response_complete(self) -> None:
        self.answered_at = time.monotonic()
        super().on_response_complete()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if isinstance(self.loop, TimedEventLoop):  # the door sheds what waited unread too long (api.load_shedding)
            # A client waits for its answer before it sends its next request on the connection, so that request
            # cannot have come before the answer went: after a long round, the selector's bound alone counted
            # the whole round as the wait of a request sent in its last moment, and shed it.
            since = max(self.loop.timed_selector.unread_since, self.answered_at)
            self.scope[UNREAD_SINCE] = since  # type: ignore[literal-required]
            self.scope[FOUND_ALONE] = self.loop.timed_selector.found_alone  # type: ignore[literal-required]


def server_options(settings: Settings) -> dict[str, Any]:
    return {
        "access_log": settings.api_access_log,
        "timeout_keep_alive": settings.api_keep_alive_seconds,
        "timeout_graceful_shutdown": 5,  # open event streams would otherwise hold a shutdown forever
        # Python's own event loop, not uvloop: reads run on the loop (api.deps.Reader), and with every core busy
        # uvloop served some connections for seconds while others waited (200 clients at the same throughput:
        # p99 6.3 s on uvloop, 0.16 s on asyncio; BENCHMARKS.md). Timed: see TimedSelector.
        "loop": f"{__name__}:{TimedEventLoop.__name__}",
        "http": f"{__name__}:{NoDelayHttpProtocol.__name__}",  # an import string: worker processes load it
    }


@dataclass(frozen=True)
class OwnListener:
    """Stands in the socket list uvicorn hands each worker process it spawns, and arrives there as a listening
    socket of that process's own, in one SO_REUSEPORT group with its siblings' (Linux).

    uvicorn binds one socket and shares it among its workers, and whichever process wakes first accepts every
    connection waiting: the 200 connections a load opened together went to one process, which served them
    all while the other idled (list pages at 200 clients: 187-190/s, against 429/s when they split). With a
    socket each, the kernel spreads connections over the processes by their addresses. uvicorn pickles the
    list into every worker it starts, restarts included; this object unpickles by binding.
    """

    host: str
    port: int
    backlog: int

    def __reduce__(self) -> tuple[Any, tuple[str, int, int]]:
        return (reuse_port_listener, (self.host, self.port, self.backlog))


def reuse_port_listener(host: str, port: int, backlog: int) -> socket.socket:
    sock = _bound_in_reuse_port_group(host, port)
    sock.listen(backlog)
    return sock


def _bound_in_reuse_port_group(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


def worker_listeners(config: Config) -> tuple[list[socket.socket], socket.socket]:
    """The sockets for uvicorn's ``Multiprocess`` to hand its workers, and the one this process holds meanwhile.

    On Linux with a fixed port, each worker binds its own (``OwnListener``); the supervisor binds one too,
    and never listens on it, so that a port already taken fails here, at start, and stays reserved between
    restarts of workers. Elsewhere (or on port 0, which would give each worker a port of its own), uvicorn's
    one shared socket.
    """
    if sys.platform != "linux" or not config.port or config.uds or config.fd is not None:
        shared = config.bind_socket()
        return [shared], shared
    reserved = _bound_in_reuse_port_group(config.host, config.port)
    own = OwnListener(config.host, config.port, config.backlog)
    return [cast(socket.socket, own)], reserved

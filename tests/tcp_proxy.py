"""A loopback TCP forwarder that can drop every connection (a database outage on demand) or hold one request."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable


class TcpProxy:
    def __init__(self, target_host: str, target_port: int, on_accept: Callable[[], object] | None = None) -> None:
        self.target = (target_host, target_port)
        self.on_accept = on_accept  # runs on each new connection, before it is forwarded
        self.port = 0
        self._listener: socket.socket | None = None
        self._connections: list[socket.socket] = []
        self._lock = threading.Lock()
        self._hold_pattern: bytes | None = None
        self.holding = threading.Event()  # set while a held request waits to be forwarded
        self._released = threading.Event()

    def start(self) -> TcpProxy:
        listener = socket.create_server(("127.0.0.1", self.port), reuse_port=False)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # the listener was closed: an outage began
            if self.on_accept is not None:
                self.on_accept()
            upstream = socket.create_connection(self.target)
            with self._lock:
                self._connections += [client, upstream]
            for source, sink, outbound in ((client, upstream, True), (upstream, client, False)):
                threading.Thread(target=self._pipe, args=(source, sink, outbound), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket, outbound: bool) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                pattern = self._hold_pattern
                if outbound and pattern is not None and pattern in data:
                    self._hold_pattern = None
                    self.holding.set()
                    self._released.wait()
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        """Refuse new connections and break every open one."""
        if self._listener is not None:
            # close() alone leaves the socket listening while the accept thread still blocks on it;
            # shutdown() stops the listening and wakes that thread.
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
            self._listener = None
        with self._lock:
            for conn in self._connections:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
                conn.close()
            self._connections.clear()

    def hold_next(self, pattern: bytes) -> None:
        """Hold the next client chunk containing ``pattern`` (SQL text, say) until ``release``: the client waits
        on the server, answer unsent, for as long as a test needs. A pattern split across two reads is missed."""
        self.holding.clear()
        self._released.clear()
        self._hold_pattern = pattern

    def release(self) -> None:
        self._released.set()

    def restore(self) -> None:
        self.start()

    def stop(self) -> None:
        self.release()
        self.cut()

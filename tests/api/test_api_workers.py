"""`tuneq api` with TUNEQ_API_WORKERS=2: two server processes on one port, one set of settings, clean exit."""

from __future__ import annotations

import asyncio
import http.client
import select
import socket
from pathlib import Path

import psutil
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from api.main import create_app
from api.serving import NoDelayHttpProtocol, server_options
from core.settings import Settings
from tests.conftest import api_client, create_api_key, wait_until
from tuneq.processes import start_api


def test_two_api_worker_processes_serve_one_port_and_stop_on_sigterm(settings: Settings, tmp_path: Path) -> None:
    key = create_api_key(settings, "acme")
    api, url = start_api(tmp_path / "logs", env={"TUNEQ_API_WORKERS": "2"})
    try:
        supervisor = psutil.Process(api.process.pid)
        wait_until(lambda: len(server_processes(supervisor)) == 2, timeout=60, what="two API worker processes")
        servers = server_processes(supervisor)
        with api_client(url, key) as client:
            for _ in range(20):
                assert client.get("/finetune").status_code == 200
        # Each worker built its app from the variables the supervisor exported: the same database and tenant.
        with api_client(url, None) as anonymous:
            assert anonymous.get("/finetune").status_code == 401
        assert all(alive(server) for server in servers)
    finally:
        code = api.stop()
    assert code == 0, api.log_tail()
    assert not any(alive(server) for server in servers)


def server_processes(supervisor: psutil.Process) -> list[psutil.Process]:
    """uvicorn's worker processes (multiprocessing spawns them), not its resource tracker or Redis."""
    return [child for child in supervisor.children() if "spawn_main" in " ".join(child.cmdline())]


def alive(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_an_idle_keep_alive_connection_outlives_uvicorns_five_second_default(
    settings: Settings, tmp_path: Path
) -> None:
    """uvicorn closes idle connections after 5 s unless told otherwise; a client (or a load balancer, 60 s idle)
    reusing one just then saw a dropped connection. `tuneq api` keeps them TUNEQ_API_KEEP_ALIVE_SECONDS (65)."""
    api, url = start_api(tmp_path / "logs")
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        connection.request("GET", "/livez")
        first = connection.getresponse()
        assert first.status == 200 and first.read()  # the whole answer: nothing more is due on this socket
        sock = connection.sock
        # Idle past uvicorn's default: the server must not close (the socket would turn readable, at EOF).
        readable, _, _ = select.select([sock], [], [], 7.0)
        assert not readable, "the server closed an idle keep-alive connection"
        connection.request("GET", "/livez")
        assert connection.getresponse().status == 200 and connection.sock is sock  # the same connection
    finally:
        connection.close()
        api.stop()


def test_connections_have_nagle_off_also_on_the_socket_several_workers_share(settings: Settings) -> None:
    """With several workers uvicorn binds the listening socket itself, without the TCP protocol number, and
    asyncio then leaves Nagle's algorithm on: each response's body waited ~40 ms for the client's delayed ACK."""

    async def accepted_nodelay(protocol_class: type[asyncio.Protocol]) -> int:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)  # as uvicorn binds one for its workers
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        with listener, socket.create_connection(listener.getsockname()):
            accepted, _ = listener.accept()
            config = uvicorn.Config(app=create_app(settings), **server_options(settings))
            config.load()
            transport, _ = await asyncio.get_running_loop().connect_accepted_socket(
                lambda: protocol_class(config=config, server_state=ServerState(), app_state={}),  # type: ignore[call-arg]
                accepted,
            )
            try:
                return accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
            finally:
                transport.close()

    assert asyncio.run(accepted_nodelay(HttpToolsProtocol)) == 0  # the case: uvicorn's own protocol leaves it on
    assert asyncio.run(accepted_nodelay(NoDelayHttpProtocol)) != 0


def listening_on(process: psutil.Process, port: int) -> bool:
    return any(c.status == psutil.CONN_LISTEN and c.laddr.port == port for c in process.net_connections("tcp"))


def connections_on(process: psutil.Process, port: int) -> int:
    return sum(c.status == psutil.CONN_ESTABLISHED and c.laddr.port == port for c in process.net_connections("tcp"))


def test_connections_opened_together_spread_over_the_worker_processes(settings: Settings, tmp_path: Path) -> None:
    """On uvicorn's one shared socket, whichever worker woke first accepted every connection waiting: 200
    opened by a load at once all went to one process while the other idled. Each worker now listens on a
    socket of its own (api.serving.OwnListener), and the kernel spreads connections over them."""
    api, url = start_api(tmp_path / "logs", env={"TUNEQ_API_WORKERS": "2"})
    host, port = url.removeprefix("http://").split(":")
    opened: list[socket.socket] = []
    try:
        supervisor = psutil.Process(api.process.pid)
        wait_until(lambda: len(server_processes(supervisor)) == 2, timeout=60, what="two API worker processes")
        servers = server_processes(supervisor)
        wait_until(lambda: all(listening_on(s, int(port)) for s in servers), timeout=60, what="both listening")
        assert not listening_on(supervisor, int(port))  # it holds the port, but connections go to the workers
        opened = [socket.create_connection((host, int(port)), timeout=10) for _ in range(64)]
        wait_until(lambda: sum(connections_on(s, int(port)) for s in servers) == 64, timeout=30, what="accepted")
        counts = [connections_on(server, int(port)) for server in servers]
        assert min(counts) >= 12, counts  # even odds per connection: fewer than 12 of 64 is a 1-in-10^7 draw
    finally:
        for each in opened:
            each.close()
        api.stop()

"""The server's listening socket: connections accepted from it have Nagle's algorithm off."""

from __future__ import annotations

import asyncio
import socket
import time
from multiprocessing.reduction import ForkingPickler
from pathlib import Path

import httpx
import pytest
import uvicorn

from commerce_core import InvalidInput
from commerce_server.config import Settings
from commerce_server.serving import NoDelayConfig, WorkerSocket, reuse_port_socket
from tests.e2e.conftest import Server, free_port, sqlite_env


async def _nodelay_of_accepted(listener: socket.socket) -> int:
    """Accept one connection through asyncio, as uvicorn's workers do, and report whether
    TCP_NODELAY is set on it."""
    seen: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    class Report(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            sock = transport.get_extra_info("socket")
            seen.set_result(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            transport.close()

    server = await asyncio.get_running_loop().create_server(Report, sock=listener)
    host, port = listener.getsockname()[:2]
    _, writer = await asyncio.open_connection(host, port)
    try:
        return await asyncio.wait_for(seen, 10)
    finally:
        writer.close()
        server.close()


def test_connections_from_several_workers_socket_have_tcp_nodelay() -> None:
    config = NoDelayConfig("commerce_server.asgi:create_app", factory=True, host="127.0.0.1",
                           port=0, workers=2)
    listener = config.bind_socket()  # what --workers N hands to every worker
    assert listener.proto == socket.IPPROTO_TCP
    assert asyncio.run(_nodelay_of_accepted(listener)) != 0


def test_uvicorn_s_own_socket_leaves_nagle_on_before_0_55_only() -> None:
    """Why NoDelayConfig exists (Kludex/uvicorn#3149): uvicorn before 0.55 bound the
    workers' socket with ``proto`` 0, and Nagle stayed on; 0.55 binds a TCP socket, and the
    override changes nothing. It stays for the older versions the range allows; once the
    range starts at 0.55 it can go."""
    listener = uvicorn.Config("commerce_server.asgi:create_app", factory=True,
                              host="127.0.0.1", port=0, workers=2).bind_socket()
    nodelay = asyncio.run(_nodelay_of_accepted(listener))
    if _version(uvicorn.__version__) < (0, 55):
        assert (listener.proto, nodelay) == (0, 0)
    else:
        assert listener.proto == socket.IPPROTO_TCP and nodelay != 0


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(".")[:2] if part.isdigit())


@pytest.mark.parametrize("bad", ["0", "-1", "many", "1001"])
def test_the_worker_thread_count_is_a_setting_and_a_bad_one_is_refused(bad: str) -> None:
    assert Settings.from_env({}).threads == 40
    assert Settings.from_env({"COMMERCE_THREADS": "4"}).threads == 4
    with pytest.raises(InvalidInput) as caught:
        Settings.from_env({"COMMERCE_THREADS": bad})
    assert [e.path for e in caught.value.errors] == ["COMMERCE_THREADS"]


def test_each_worker_binds_a_socket_of_its_own_in_a_reuseport_group() -> None:
    config = NoDelayConfig("commerce_server.asgi:create_app", factory=True, host="127.0.0.1",
                           port=free_port(), workers=2)
    address = reuse_port_socket(config)
    assert isinstance(address, WorkerSocket)
    # what multiprocessing's spawn does to it on its way to each worker
    first, second = (ForkingPickler.loads(ForkingPickler.dumps(address)) for _ in range(2))
    try:
        for sock in (first, second):
            assert sock.getsockname() == ("127.0.0.1", config.port)
            assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) == 1
            assert sock.proto == socket.IPPROTO_TCP
        assert first.fileno() != second.fileno()
        second.close()  # else the kernel may hand the connection below to it, unserved
        assert asyncio.run(_nodelay_of_accepted(first)) != 0
    finally:
        first.close()
        second.close()
        address.close()


def _listening_sockets(port: int) -> int:
    lines = Path("/proc/net/tcp").read_text().splitlines()[1:]
    return sum(1 for line in lines
               if line.split()[1].endswith(f":{port:04X}") and line.split()[3] == "0A")


def test_a_server_with_two_workers_listens_twice_and_answers(tmp_path: Path) -> None:
    server = Server(tmp_path, sqlite_env(tmp_path), "--workers", "2")
    try:
        # the first worker up answers the health check; the second may take a moment more
        deadline = time.monotonic() + 15
        while _listening_sockets(server.port) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _listening_sockets(server.port) == 2  # one per worker, none in the supervisor
        with httpx.Client(base_url=server.url) as client:
            assert all(client.get("/healthz").status_code == 200 for _ in range(20))
    finally:
        server.stop()

"""The server's listening socket: connections accepted from it have Nagle's algorithm off."""

from __future__ import annotations

import asyncio
import socket

import uvicorn

from commerce_server.serving import NoDelayConfig


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


def test_uvicorn_s_own_socket_would_leave_nagle_on() -> None:
    """Why NoDelayConfig exists (Kludex/uvicorn#3149): when this starts failing, uvicorn
    has fixed it and the override can go."""
    listener = uvicorn.Config("commerce_server.asgi:create_app", factory=True,
                              host="127.0.0.1", port=0, workers=2).bind_socket()
    assert listener.proto == 0
    assert asyncio.run(_nodelay_of_accepted(listener)) == 0

"""Running the app under uvicorn, one worker or several."""

from __future__ import annotations

import socket

import uvicorn
from uvicorn.supervisors import Multiprocess

__all__ = ["NoDelayConfig", "serve"]

#: uvicorn's exit status when the server could not start.
STARTUP_FAILURE = 3


class NoDelayConfig(uvicorn.Config):
    """uvicorn's configuration, with a listening socket whose connections get TCP_NODELAY.

    With ``--workers N`` uvicorn binds the socket itself and leaves its ``proto`` at 0;
    accepted connections inherit it, and asyncio only turns Nagle's algorithm off when
    ``proto`` is ``IPPROTO_TCP``. Every keep-alive request after the first then waits about
    40 ms for the client's delayed ACK (Kludex/uvicorn#3149; measured by ``make bench``:
    one client at 16 orders/s instead of 65). The same socket, re-wrapped with ``proto`` set,
    has none of that.
    """

    def bind_socket(self) -> socket.socket:
        sock = super().bind_socket()
        if sock.family in (socket.AF_INET, socket.AF_INET6) and sock.proto == 0:
            return socket.socket(sock.family, sock.type, socket.IPPROTO_TCP,
                                 fileno=sock.detach())
        return sock


def serve(*, host: str, port: int, workers: int) -> int:
    """Serve the reference server's app until interrupted; the exit status."""
    config = NoDelayConfig("commerce_server.asgi:create_app", factory=True, host=host,
                           port=port, workers=workers, log_level="info")
    server = uvicorn.Server(config)
    try:
        if config.workers > 1:
            Multiprocess(config, sockets=[config.bind_socket()]).run()
        else:
            server.run()
    except KeyboardInterrupt:
        pass
    if config.workers == 1 and not server.started:
        return STARTUP_FAILURE
    return 0

"""Running the app under uvicorn, one worker or several."""

from __future__ import annotations

import socket

import uvicorn
from uvicorn.supervisors import Multiprocess

__all__ = ["NoDelayConfig", "serve"]

#: Seconds an idle keep-alive connection stays open (uvicorn's default is 5). Longer than
#: the clients' own (httpx drops idle connections after 5 s, load balancers after 60), so
#: that the server never closes a connection just as a client sends on it: that race cost
#: a request in 4,000 a ReadError under load (make bench, 64 clients).
KEEP_ALIVE = 75

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


def _listen(family: int, host: str, port: int, backlog: int) -> socket.socket:
    """A listening TCP socket in a group of its own port's (``SO_REUSEPORT``), Nagle off on
    what it accepts (``proto`` set)."""
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.listen(backlog)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


class WorkerSocket(socket.socket):
    """The listening address, handed to every worker, which binds a socket of its own there.

    With one socket shared by all workers (uvicorn's way), whichever worker wakes first
    accepts every connection waiting, up to the backlog: a burst of keep-alive connections
    all lands on one worker, and the others idle (``make bench``: one worker at 83 % of a
    core, the other at 2 %). With a socket per worker in a ``SO_REUSEPORT`` group, the kernel
    spreads new connections over the workers. This object is only the address in the
    supervisor; unpickled in a worker (multiprocessing's spawn), it becomes that worker's
    socket, and a worker started again binds again.
    """

    def __init__(self, family: int, host: str, port: int, backlog: int) -> None:
        super().__init__(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self.address = (family, host, port, backlog)

    def __reduce__(self) -> tuple[object, tuple[int, str, int, int]]:
        return (_listen, self.address)


def reuse_port_socket(config: uvicorn.Config) -> socket.socket:
    """A `WorkerSocket` for ``config``'s address, after checking that the address can be
    bound (so a port in use fails here, once, not in every worker); the shared socket where
    ``SO_REUSEPORT`` is missing or no fixed port is given."""
    if not hasattr(socket, "SO_REUSEPORT") or config.port == 0 or config.uds or config.fd:
        return config.bind_socket()
    family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
    _listen(family, config.host, config.port, config.backlog).close()
    return WorkerSocket(family, config.host, config.port, config.backlog)


def serve(*, host: str, port: int, workers: int) -> int:
    """Serve the reference server's app until interrupted; the exit status."""
    config = NoDelayConfig("commerce_server.asgi:create_app", factory=True, host=host,
                           port=port, workers=workers, log_level="info",
                           timeout_keep_alive=KEEP_ALIVE)
    server = uvicorn.Server(config)
    try:
        if config.workers > 1:
            Multiprocess(config, sockets=[reuse_port_socket(config)]).run()
        else:
            server.run()
    except KeyboardInterrupt:
        pass
    if config.workers == 1 and not server.started:
        return STARTUP_FAILURE
    return 0

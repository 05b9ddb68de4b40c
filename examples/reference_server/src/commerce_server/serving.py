"""Running the app under uvicorn, one worker or several."""

from __future__ import annotations

import asyncio
import os
import socket
from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.supervisors import Multiprocess

__all__ = ["GuardedH11Protocol", "NoDelayConfig", "serve"]

#: How long a request's headers may take to arrive, by default (``COMMERCE_HEADER_TIMEOUT``).
HEADER_TIMEOUT = 10.0

_TIMEOUT_BODY = (b'{"type":"/problems/request-timeout","title":"Request timeout",'
                 b'"status":408,"detail":"the request headers did not arrive in time"}')
_TIMED_OUT = (b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n"
              b"Content-Type: application/problem+json\r\n"
              b"X-Content-Type-Options: nosniff\r\n"
              + f"Content-Length: {len(_TIMEOUT_BODY)}\r\n\r\n".encode() + _TIMEOUT_BODY)


class GuardedH11Protocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol, with a deadline for a request's headers: a connection
    that sends nothing, or its headers a byte at a time, is answered 408 and closed after
    ``COMMERCE_HEADER_TIMEOUT`` seconds, instead of being held open for ever (slowloris;
    uvicorn itself only times out idle keep-alive connections). The body has a deadline of
    its own in the gateway (``COMMERCE_BODY_TIMEOUT``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # read here, in each worker: the supervisor validated it at start
        self.header_timeout = float(os.environ.get("COMMERCE_HEADER_TIMEOUT") or HEADER_TIMEOUT)
        self._deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        if self._waiting():
            self._arm()  # the bytes of a new request: its headers have until the deadline
        super().data_received(data)
        if not self._waiting():
            self._disarm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _waiting(self) -> bool:
        """No request is being served: the connection is between, or before, requests."""
        return self.cycle is None or self.cycle.response_complete

    def _arm(self) -> None:
        if self._deadline is None:
            self._deadline = self.loop.call_later(self.header_timeout, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self) -> None:
        self._deadline = None
        if self._waiting() and not self.transport.is_closing():
            self.transport.write(_TIMED_OUT)
            self.transport.close()

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


def serve(*, host: str, port: int, workers: int, max_connections: int | None = None,
          trusted_proxies: str = "") -> int:
    """Serve the reference server's app until interrupted; the exit status.

    ``max_connections``: connections and requests a worker takes at once (uvicorn answers
    503 beyond it). ``trusted_proxies``: the addresses whose ``X-Forwarded-For`` is believed
    (none by default: uvicorn's own default, 127.0.0.1, would let any local client choose
    the address its anonymous rate limit is counted on)."""
    config = NoDelayConfig("commerce_server.asgi:create_app", factory=True, host=host,
                           port=port, workers=workers, log_level="info",
                           timeout_keep_alive=KEEP_ALIVE, http=GuardedH11Protocol,
                           limit_concurrency=max_connections,
                           proxy_headers=bool(trusted_proxies.strip()),
                           forwarded_allow_ips=trusted_proxies.strip() or "")
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

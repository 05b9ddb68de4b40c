"""Running the app under uvicorn, one worker or several."""

from __future__ import annotations

import asyncio
import fcntl
import json
import logging
import os
import re
import secrets
import shutil
import socket
import tempfile
from pathlib import Path
from typing import IO, Any

import uvicorn
from prometheus_client.multiprocess import mark_process_dead
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.supervisors import Multiprocess

from commerce_server.logs import log_config

__all__ = ["GuardedH11Protocol", "NoDelayConfig", "serve"]

#: How long a request's headers may take to arrive, by default (``COMMERCE_HEADER_TIMEOUT``).
HEADER_TIMEOUT = 10.0
#: How long a response may wait for a client that does not read it (``COMMERCE_SEND_TIMEOUT``).
SEND_TIMEOUT = 30.0
#: Connections each worker keeps, by default (``COMMERCE_MAX_CONNECTIONS``).
MAX_CONNECTIONS = 1000
#: Seconds a stopping worker waits for the requests it is serving.
SHUTDOWN_TIMEOUT = 30

#: When this share of the connections is taken, a new one closes the idle keep-alive ones.
_RECLAIM_AT = 0.9


def _raw_problem(status: int, reason: str, kind: str, detail: str,
                 *headers: str) -> bytes:
    """A whole HTTP/1.1 problem response, for the answers the protocol gives itself (before
    or without the app): the same problem shape and headers as every other."""
    body = json.dumps({"type": f"/problems/{kind}", "title": reason, "status": status,
                       "detail": detail}).encode()
    lines = [f"HTTP/1.1 {status} {reason}", "Connection: close",
             "Content-Type: application/problem+json", "X-Content-Type-Options: nosniff",
             f"X-Request-Id: {secrets.token_hex(8)}", *headers,
             f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class GuardedH11Protocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol, with the deadlines and bounds uvicorn lacks (OWASP API4):

    - a request's headers have ``COMMERCE_HEADER_TIMEOUT`` seconds to arrive, from the
      connection or from the request's first byte: a connection that sends nothing, or its
      headers a byte at a time, is answered 408 and closed (slowloris);
    - a response has ``COMMERCE_SEND_TIMEOUT`` seconds to make progress: a client that
      stops reading (its buffers full, pipelined requests piling up) is dropped, instead of
      holding the connection, and the shutdown, for ever;
    - a worker keeps ``COMMERCE_MAX_CONNECTIONS`` connections: when nine in ten are taken,
      a new one closes those idling between requests (a keep-alive slot is not a
      reservation), and beyond the bound a new one is answered 503 and closed.

    Its own answers (400 for a malformed request, 408, 503) are problems with the headers
    every response has. The body has a deadline of its own in the gateway
    (``COMMERCE_BODY_TIMEOUT``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # read here, in each worker: the supervisor validated them at start
        self.header_timeout = float(os.environ.get("COMMERCE_HEADER_TIMEOUT") or HEADER_TIMEOUT)
        self.send_timeout = float(os.environ.get("COMMERCE_SEND_TIMEOUT") or SEND_TIMEOUT)
        self.max_connections = int(os.environ.get("COMMERCE_MAX_CONNECTIONS")
                                   or MAX_CONNECTIONS)
        self._deadline: asyncio.TimerHandle | None = None
        self._send_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) >= self.max_connections * _RECLAIM_AT:
            for other in list(self.connections):
                if other is not self and isinstance(other, GuardedH11Protocol) and other.idle():
                    other.transport.close()
        if len(self.connections) > self.max_connections:
            self.transport.write(_raw_problem(
                503, "Service Unavailable", "too-many-connections",
                "the server has as many connections as it takes; try again", "Retry-After: 1"))
            self.transport.close()
            return
        self._arm()

    def data_received(self, data: bytes) -> None:
        if self._waiting():
            self._arm()  # the bytes of a new request: its headers have until the deadline
        super().data_received(data)
        if not self._waiting():
            self._disarm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._send_deadline is not None:
            self._send_deadline.cancel()
            self._send_deadline = None
        super().connection_lost(exc)

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._send_deadline is None:
            self._send_deadline = self.loop.call_later(self.send_timeout, self._not_reading)

    def resume_writing(self) -> None:
        super().resume_writing()
        if self._send_deadline is not None:
            self._send_deadline.cancel()
            self._send_deadline = None

    def send_400_response(self, msg: str) -> None:
        self.transport.write(_raw_problem(400, "Bad Request", "malformed-request",
                                          "the request is not valid HTTP/1.1"))
        self.transport.close()

    def idle(self) -> bool:
        """Between requests, with nothing of the next one received."""
        return self._waiting() and self._deadline is None and not self.transport.is_closing()

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
            self.transport.write(_raw_problem(408, "Request Timeout", "request-timeout",
                                              "the request headers did not arrive in time"))
            self.transport.close()

    def _not_reading(self) -> None:
        self._send_deadline = None
        self.logger.warning("%s stopped reading its response; dropped", self.client)
        self.transport.abort()


#: Seconds an idle keep-alive connection stays open (uvicorn's default is 5). Longer than
#: the clients' own (httpx drops idle connections after 5 s, load balancers after 60), so
#: that the server never closes a connection just as a client sends on it: that race cost
#: a request in 4,000 a ReadError under load (make bench, 64 clients). Near the connection
#: bound, idle connections are closed sooner (`GuardedH11Protocol`).
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


class MetricsMultiprocess(Multiprocess):
    """uvicorn's supervisor of the workers, which also tells the metrics when it replaces a
    worker that died: the dead worker's live gauges (pool connections in use) go with it,
    instead of being summed for ever."""

    def keep_subprocess_alive(self) -> None:
        before = {process.pid for process in self.processes}
        super().keep_subprocess_alive()
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            for pid in before - {process.pid for process in self.processes}:
                if pid is not None:
                    mark_process_dead(pid)  # type: ignore[no-untyped-call]


#: the files prometheus-client's multiprocess mode writes (``<kind>_<pid>.db``): the only
#: ones the server removes from a metrics folder
_METRICS_FILE = re.compile(r"(counter|histogram|summary|gauge_(all|liveall|min|livemin|max|"
                           r"livemax|sum|livesum|mostrecent|livemostrecent))_\d+\.db")


def claim_metrics_folder(folder: str) -> IO[bytes]:
    """Take an operator's ``PROMETHEUS_MULTIPROC_DIR`` for this server: a lock held while
    the server runs (the returned file: keep it open), then the values an earlier run left
    removed (prometheus-client's rule: wipe it before the processes start), so that counters
    start at 0 with the server and dead runs' live gauges leave the sum. Only the metrics'
    own files go. `SystemExit` when another server holds the folder (wiping it would lose
    that server's values, and sharing it would sum two servers as one), or when it holds
    other ``.db`` files (a SQLite store: prometheus-client would read them as metrics)."""
    path = Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    others = sorted(f.name for f in path.glob("*.db") if not _METRICS_FILE.fullmatch(f.name))
    if others:
        raise SystemExit(f"commerce-server: PROMETHEUS_MULTIPROC_DIR {folder} holds other .db "
                         f"files ({', '.join(others[:3])}), which the metrics would read as "
                         "theirs; give the metrics a folder of their own")
    lock = (path / ".commerce-server.lock").open("ab")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        lock.close()
        raise SystemExit(f"commerce-server: PROMETHEUS_MULTIPROC_DIR {folder} is in use by "
                         "another server; give each server a folder of its own") from None
    stale = [file for file in path.iterdir() if _METRICS_FILE.fullmatch(file.name)]
    for file in stale:
        file.unlink(missing_ok=True)
    if stale:
        logging.getLogger("commerce_server").info(
            "metrics: removed %d files of an earlier run from %s", len(stale), folder)
    return lock


def serve(*, host: str, port: int, workers: int, max_connections: int | None = None,
          log_format: str = "text", tls: tuple[str, str] = ("", "")) -> int:
    """Serve the reference server's app until interrupted; the exit status.

    ``max_connections``: connections a worker keeps (`GuardedH11Protocol` answers 503
    beyond it). ``X-Forwarded-For`` is never believed here: the app does it for
    ``COMMERCE_TRUSTED_PROXIES`` (`asgi.build_app`; none by default: uvicorn's own default,
    127.0.0.1, would let any local client choose the address its anonymous rate limit is
    counted on). ``tls``: a certificate file and its key file (PEM), to speak HTTPS."""
    if max_connections is not None:  # read by each worker's GuardedH11Protocol
        os.environ["COMMERCE_MAX_CONNECTIONS"] = str(max_connections)
    config = NoDelayConfig("commerce_server.asgi:create_app", factory=True, host=host,
                           port=port, workers=workers, log_level="info",
                           log_config=log_config(log_format),
                           timeout_keep_alive=KEEP_ALIVE, http=GuardedH11Protocol,
                           timeout_graceful_shutdown=SHUTDOWN_TIMEOUT,
                           # the app believes X-Forwarded-For itself (asgi.build_app)
                           proxy_headers=False, ssl_certfile=tls[0] or None,
                           ssl_keyfile=tls[1] or None)
    server = uvicorn.Server(config)
    metrics_folder = None
    chosen = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    held = claim_metrics_folder(chosen) if chosen else None
    if not chosen and config.workers > 1:
        # every worker writes its metrics here, and any worker's /metrics sums them all:
        # a fresh folder per start (counters start at 0 with the server), removed after
        metrics_folder = tempfile.mkdtemp(prefix="commerce-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_folder
    try:
        if config.workers > 1:
            MetricsMultiprocess(config, sockets=[reuse_port_socket(config)]).run()
        else:
            server.run()
    except KeyboardInterrupt:
        pass
    finally:
        if metrics_folder is not None:
            shutil.rmtree(metrics_folder, ignore_errors=True)
        if held is not None:
            held.close()  # the folder's lock, released
    if config.workers == 1 and not server.started:
        return STARTUP_FAILURE
    return 0

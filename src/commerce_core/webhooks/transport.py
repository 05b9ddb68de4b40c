"""Sending a delivery over HTTP with the standard library (`http.client`)."""

from __future__ import annotations

import contextlib
import http.client
import socket
import ssl
import threading
import time
import urllib.parse
from collections.abc import Mapping

from commerce_core.webhooks.ports import DeliveryFailed

__all__ = ["HttpTransport"]


class HttpTransport:
    """`WebhookTransport` on `http.client`: one request per connection, ``timeout`` seconds
    for the whole exchange (connecting, sending, the answer's status line and headers, then
    its body: a receiver that trickles its answer is cut off, not waited on read by read;
    a status that arrived in time counts), at most ``max_answer`` bytes of an answer read
    (its body is not kept). A redirect is an answer
    like any other (not a 2xx: tried again later), never followed; no proxy is used.
    ``ssl_context``: how https endpoints are verified (the system's trust store)."""

    def __init__(self, *, timeout: float = 10.0, max_answer: int = 65_536,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self.timeout = timeout
        self.max_answer = max_answer
        self.ssl_context = ssl_context or ssl.create_default_context()

    def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> int:
        try:
            parts = urllib.parse.urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise DeliveryFailed(f"not a URL: {url[:100]!r}") from exc
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise DeliveryFailed(f"not an http or https URL: {url[:100]!r}")
        secure = parts.scheme == "https"
        host = urllib.parse.unquote(parts.hostname)  # an IPv6 zone: fe80::1%25eth0
        port = port or (443 if secure else 80)
        deadline = time.monotonic() + self.timeout
        current: list[socket.socket] = []  # the socket a cut shuts down
        cut_off = threading.Event()

        def cut() -> None:  # the exchange's deadline: a blocked read or write ends now
            cut_off.set()
            for sock in current:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

        timer = threading.Timer(self.timeout, cut)
        timer.daemon = True
        timer.start()
        connection: http.client.HTTPConnection = (
            http.client.HTTPSConnection(host, port, timeout=self.timeout,
                                        context=self.ssl_context)
            if secure else http.client.HTTPConnection(host, port, timeout=self.timeout))
        try:
            raw = self._connect(host, port, deadline, current)
            if secure:
                raw = self.ssl_context.wrap_socket(raw, server_hostname=host)
                current.append(raw)
            if cut_off.is_set():
                raise TimeoutError("timed out")
            connection.sock = raw
            connection.request("POST", (parts.path or "/") + (
                f"?{parts.query}" if parts.query else ""), body=body, headers={
                "Content-Type": "application/json", "User-Agent": "commerce-core-webhooks",
                "Connection": "close", **headers})
            answer = connection.getresponse()
        except (OSError, http.client.HTTPException, ValueError) as exc:
            # refused, timed out, reset, TLS or DNS failure, a garbled answer
            timer.cancel()
            connection.close()
            reason = (f"timed out: no answer within {self.timeout} s" if cut_off.is_set()
                      or isinstance(exc, TimeoutError) else f"{type(exc).__name__}: {exc}")
            raise DeliveryFailed(reason[:500]) from exc
        try:  # the status is the answer; its body is read (bounded) only to end the exchange
            answer.read(self.max_answer)
        except (OSError, http.client.HTTPException):
            pass
        finally:
            timer.cancel()
            connection.close()
        return int(answer.status)

    @staticmethod
    def _connect(host: str, port: int, deadline: float,
                 current: list[socket.socket]) -> socket.socket:
        """A connection to one of the host's addresses, tried in turn, all within the
        deadline (`socket.create_connection` gives each address the whole timeout)."""
        failure: OSError = OSError(f"no address for {host}")
        for family, kind, proto, _, address in socket.getaddrinfo(
                host, port, type=socket.SOCK_STREAM):
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("timed out")
            sock = socket.socket(family, kind, proto)
            current.append(sock)
            try:
                sock.settimeout(left)
                sock.connect(address)
            except OSError as exc:
                sock.close()
                current.remove(sock)
                failure = exc
                continue
            sock.settimeout(max(deadline - time.monotonic(), 0.001))
            return sock
        raise failure

"""Sending a delivery over HTTP with the standard library (`http.client`)."""

from __future__ import annotations

import contextlib
import http.client
import socket
import ssl
import threading
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
        connection: http.client.HTTPConnection = (
            http.client.HTTPSConnection(parts.hostname, port, timeout=self.timeout,
                                        context=self.ssl_context)
            if parts.scheme == "https"
            else http.client.HTTPConnection(parts.hostname, port, timeout=self.timeout))
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        cut_off = threading.Event()

        def cut() -> None:  # the exchange's deadline: a blocked read or write ends now
            cut_off.set()
            sock = connection.sock
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

        timer = threading.Timer(self.timeout, cut)
        timer.daemon = True
        timer.start()
        try:
            connection.request("POST", target, body=body, headers={
                "Content-Type": "application/json", "User-Agent": "commerce-core-webhooks",
                "Connection": "close", **headers})
            answer = connection.getresponse()
        except (OSError, http.client.HTTPException, ValueError) as exc:
            # refused, timed out, reset, TLS or DNS failure, a garbled answer
            timer.cancel()
            connection.close()
            reason = (f"timed out: no answer within {self.timeout} s" if cut_off.is_set()
                      else f"{type(exc).__name__}: {exc}")
            raise DeliveryFailed(reason[:500]) from exc
        try:  # the status is the answer; its body is read (bounded) only to end the exchange
            answer.read(self.max_answer)
        except (OSError, http.client.HTTPException):
            pass
        finally:
            timer.cancel()
            connection.close()
        return int(answer.status)

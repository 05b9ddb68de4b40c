"""Headers every response carries, and the request id (ASGI middleware)."""

from __future__ import annotations

import ipaddress
import json
import re
import secrets
from collections.abc import Sequence
from contextvars import ContextVar
from typing import Any

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["PEER", "KeepPeer", "ResponseHeaders", "current_request_id", "proxy_networks",
           "unmapped"]

#: the scope key where `KeepPeer` keeps the address of the immediate peer (the proxy in
#: front), before a proxy-headers middleware puts the forwarded client in ``client``
PEER = "commerce.peer"

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

_REQUEST_ID: ContextVar[str] = ContextVar("commerce_request_id", default="-")

#: what a request id taken from a proxy may look like: nothing a log line could be forged
#: with (no spaces, quotes or line breaks), 128 characters at most
_REQUEST_ID_FORM = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def current_request_id() -> str:
    """The id of the request being served (``X-Request-Id``), for log lines."""
    return _REQUEST_ID.get()


def unmapped(address: str) -> str:
    """An IPv4 peer of a dual-stack socket (``::ffff:10.0.0.1``) as the IPv4 address it is
    (``10.0.0.1``), and an IPv6 one without its zone (``fe80::1%eth0``: ``fe80::1``), so
    that lists of addresses and networks match them; anything else as it is."""
    if ":" not in address:
        return address
    try:
        parsed = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return address
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is not None:
        return str(parsed.ipv4_mapped)
    return str(parsed)


def proxy_networks(spec: str | Sequence[str]) -> list[Network] | None:
    """Proxies as networks: comma-separated (or a sequence of) addresses and networks
    (``127.0.0.1, 10.0.0.0/8``); `None` for ``*`` (any peer); `ValueError` for a part that
    is neither."""
    parts = [p.strip() for p in (spec.split(",") if isinstance(spec, str) else spec)]
    if "*" in parts:
        return None
    return [ipaddress.ip_network(part, strict=False) for part in parts if part]


class KeepPeer:
    """Keeps the immediate peer's address in the scope (`PEER`) before anything rewrites
    ``client`` from ``X-Forwarded-For``: put it outside the proxy-headers middleware (the
    reference server does), so that `ResponseHeaders` knows whether the request really came
    from a trusted proxy. An IPv4 peer of a dual-stack socket (``::ffff:10.0.0.1``) becomes
    its IPv4 address in ``client`` too (`unmapped`), for every list of addresses after."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and PEER not in scope:
            client = scope.get("client")
            host = unmapped(client[0]) if client else None
            if client and host != client[0]:
                scope["client"] = (host, client[1])
            scope[PEER] = host
        await self.app(scope, receive, send)


class ResponseHeaders:
    """Every response carries ``X-Request-Id`` (a new id per request) and
    ``X-Content-Type-Options: nosniff``; one to a request that sent credentials carries
    ``Cache-Control: no-store`` (an order, a stock level: nothing for a shared cache to keep);
    a 5xx problem carries its ``request_id`` in the body too, so that a client can quote it
    while the specifics stay in the server's log (OWASP API8)."""

    def __init__(self, app: ASGIApp, *, trusted_proxies: str | Sequence[str] = ()) -> None:
        self.app = app
        #: take the request's own ``X-Request-Id`` (when it is a plain token) when the peer
        #: is one of these proxies (one that sets it, so that one id follows the request
        #: through both logs); the peer is the one `KeepPeer` kept, or else ``client``
        self.proxies = proxy_networks(trusted_proxies)
        self.any_peer = self.proxies is None
        self.trusts = self.any_peer or bool(self.proxies)

    def _from_proxy(self, scope: Scope) -> bool:
        if self.any_peer:
            return True
        if PEER in scope:
            peer = scope[PEER]
        else:
            client = scope.get("client")
            peer = client[0] if client else None
        try:
            address = ipaddress.ip_address(unmapped(peer)) if isinstance(peer, str) else None
        except ValueError:
            return False
        return address is not None and any(address in net for net in self.proxies or ())

    def _request_id(self, scope: Scope) -> str:
        if self.trusts and self._from_proxy(scope):
            for name, value in scope["headers"]:
                if name == b"x-request-id":
                    sent = bytes(value).decode("latin-1")
                    if _REQUEST_ID_FORM.fullmatch(sent):
                        return sent
                    break
        return secrets.token_hex(8)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = self._request_id(scope)
        token = _REQUEST_ID.set(request_id)
        credentials = any(name == b"authorization" for name, _ in scope["headers"])
        held: dict[str, Any] = {}

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(raw=list(message["headers"]))
                headers["X-Request-Id"] = request_id
                headers["X-Content-Type-Options"] = "nosniff"
                if credentials:
                    headers["Cache-Control"] = "no-store"
                message = {**message, "headers": headers.raw}
                if message["status"] >= 500 and headers.get("content-type", "").startswith(
                        "application/problem+json"):
                    held["start"], held["body"] = message, b""  # sent with the body
                    return
            elif message["type"] == "http.response.body" and "start" in held:
                held["body"] += message.get("body", b"")
                if message.get("more_body"):
                    return
                await _send_problem(send, held["start"], held["body"], request_id)
                return
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            _REQUEST_ID.reset(token)


async def _send_problem(send: Send, start: Message, body: bytes, request_id: str) -> None:
    try:
        problem = json.loads(body)
        problem["request_id"] = request_id
        body = json.dumps(problem).encode()
    except (ValueError, TypeError):
        pass  # not ours to rewrite: sent as it was
    headers = MutableHeaders(raw=list(start["headers"]))
    headers["Content-Length"] = str(len(body))
    await send({**start, "headers": headers.raw})
    await send({"type": "http.response.body", "body": body, "more_body": False})

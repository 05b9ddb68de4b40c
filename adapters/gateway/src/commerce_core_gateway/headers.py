"""Headers every response carries, and the request id (ASGI middleware)."""

from __future__ import annotations

import json
import re
import secrets
from contextvars import ContextVar
from typing import Any

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["ResponseHeaders", "current_request_id"]

_REQUEST_ID: ContextVar[str] = ContextVar("commerce_request_id", default="-")

#: what a request id taken from a proxy may look like: nothing a log line could be forged
#: with (no spaces, quotes or line breaks), 128 characters at most
_REQUEST_ID_FORM = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def current_request_id() -> str:
    """The id of the request being served (``X-Request-Id``), for log lines."""
    return _REQUEST_ID.get()


class ResponseHeaders:
    """Every response carries ``X-Request-Id`` (a new id per request) and
    ``X-Content-Type-Options: nosniff``; one to a request that sent credentials carries
    ``Cache-Control: no-store`` (an order, a stock level: nothing for a shared cache to keep);
    a 5xx problem carries its ``request_id`` in the body too, so that a client can quote it
    while the specifics stay in the server's log (OWASP API8)."""

    def __init__(self, app: ASGIApp, *, trust_request_id: bool = False) -> None:
        self.app = app
        #: take the request's own ``X-Request-Id`` (when it is a plain token): for a server
        #: behind a proxy that sets it, so that one id follows the request through both logs
        self.trust_request_id = trust_request_id

    def _request_id(self, scope: Scope) -> str:
        if self.trust_request_id:
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

"""HTTP requests as metrics (an ASGI middleware), and the ``/metrics`` endpoint with its
access rule."""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable, Sequence
from typing import Any

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from commerce_core_prometheus.metrics import CONTENT_TYPE_LATEST, Metrics

__all__ = ["HttpMetrics", "allowed_networks", "metrics_endpoint", "route_template"]

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class HttpMetrics:
    """Counts and times every HTTP request by its route's template (``/v1/orders/{id}``,
    ``/admin/orders/{id}``; ``unmatched`` for no route: ids never become labels), its
    method and its status."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        status = [500]

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            template = route_template(scope)
            method = scope.get("method", "")
            method = method if method in _METHODS else "other"
            self.metrics.http_requests.labels(template, method, str(status[0])).inc()
            self.metrics.http_duration.labels(template, method).observe(
                time.perf_counter() - began)


def route_template(scope: Scope) -> str:
    """The template of the route that answered (``/v1/orders/{id}``, ``/admin/orders/{id}``),
    ``<mount>/*`` for a path a mount took but matched nothing in (or its static files), and
    ``unmatched`` for none."""
    route = scope.get("route")
    root = str(scope.get("root_path", "")).rstrip("/")
    if isinstance(route, Mount):  # the mount's own path is in root_path already
        return f"{root}/*"
    path = getattr(route, "path", None)
    return f"{root}{path}" if isinstance(path, str) else "unmatched"


def allowed_networks(spec: str) -> list[Network]:
    """``COMMERCE_METRICS_ALLOW``: comma-separated addresses or networks (``10.0.0.0/8``);
    `ValueError` for one that is neither."""
    return [ipaddress.ip_network(part.strip(), strict=False)
            for part in spec.split(",") if part.strip()]


def metrics_endpoint(metrics: Metrics, *, allow: Sequence[Network],
                     authorized: Callable[[Request], bool] | None = None,
                     ) -> Callable[[Request], Any]:
    """``GET /metrics``: for clients whose address is in ``allow`` (loopback by default:
    a Prometheus beside the server), or whose request ``authorized`` says yes (an admin's
    API key; asked on a worker thread: it may count failures in a storage); everyone else
    gets 404, as if there were nothing here."""

    async def endpoint(request: Request) -> Response:
        address = request.client.host if request.client else ""
        try:
            ip = ipaddress.ip_address(address)
            if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
                ip = ip.ipv4_mapped  # an IPv4 client of a dual-stack socket
            near = any(ip in network for network in allow)
        except ValueError:
            near = False
        if not near and not (authorized is not None and await anyio.to_thread.run_sync(
                authorized, request)):
            return PlainTextResponse("Not found\n", status_code=404)
        body = await anyio.to_thread.run_sync(metrics.exposition)  # reads the stores
        return Response(body, media_type=CONTENT_TYPE_LATEST,
                        headers={"Cache-Control": "no-store"})

    return endpoint

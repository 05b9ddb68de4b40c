"""Gateway cost: a place-order request through the whole gateway (authentication, rate
limiting, validation) against the same handler behind a bare route without them.

Both apps are called in process through ASGI, one request after the other and alternating,
on the same platform, so the difference is the gateway's own work and nothing else."""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from typing import Any

import cattrs
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bench.common import ADDRESS, workload
from commerce_core import Platform
from commerce_core_gateway import GatewayConfig, create_app, handlers
from commerce_core_gateway.bodies import PlaceOrderBody
from commerce_core_gateway.routing import Call
from commerce_core_gateway.security import Principal, Role

KEY = "bench_gateway_key"


def bare_app(platform: Platform, principal: Principal) -> Starlette:
    """The place-order handler on a plain route: the body is turned into the handler's types
    by a plain cattrs converter (no constraints checked), nobody is authenticated, nothing
    is counted."""
    plain = cattrs.Converter()

    async def place(request: Request) -> Response:
        raw = await request.body()
        body = plain.structure(json.loads(raw), PlaceOrderBody)
        headers = {k.lower(): v for k, v in request.headers.items()}
        call = Call(platform, principal, {}, {}, body, headers, raw,
                    idempotency_key=headers.get("idempotency-key"))
        return await run_in_threadpool(handlers.place_order, call)

    return Starlette(routes=[Route("/v1/orders", place, methods=["POST"])])


async def _request(app: Any, body: bytes, key: str) -> tuple[int, float]:
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": "/v1/orders", "raw_path": b"/v1/orders", "query_string": b"",
        "root_path": "", "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000),
        "headers": [(b"host", b"bench"), (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"authorization", f"Bearer {KEY}".encode()),
                    (b"idempotency-key", key.encode())],
    }
    sent = False
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            await asyncio.sleep(3600)
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    begin = time.perf_counter()
    await app(scope, receive, send)
    return status, time.perf_counter() - begin


def measure(platform: Platform, count: int, *, seed: int = 11) -> dict[str, Any]:
    principal = Principal(Role.CUSTOMER, "cust-gateway")
    full = create_app(platform, GatewayConfig(
        api_keys={KEY: principal}, rate_limit="1000000/second",
        checkout_rate_limit="1000000/second"))
    bare = bare_app(platform, principal)
    specs = workload(2 * count + 40, seed=seed)

    async def run() -> tuple[list[float], list[float], int]:
        times: dict[str, list[float]] = {"full": [], "bare": []}
        errors = 0
        for n, spec in enumerate(specs):
            which = "full" if n % 2 == 0 else "bare"
            body = json.dumps({"lines": [{"sku": s, "quantity": q} for s, q in spec.lines],
                               "payment": {"token": "tok_visa"},
                               "shipping_address": ADDRESS}).encode()
            status, seconds = await _request(full if which == "full" else bare, body, spec.key)
            if status != 201:
                errors += 1
            if n >= 40:  # the first are warm-up
                times[which].append(seconds)
        return times["full"], times["bare"], errors

    full_times, bare_times, errors = asyncio.run(run())
    full_ms, bare_ms = (statistics.median(full_times) * 1000,
                        statistics.median(bare_times) * 1000)
    return {
        "requests_each": len(full_times), "errors": errors,
        "full_median_ms": round(full_ms, 3), "bare_median_ms": round(bare_ms, 3),
        "full_mean_ms": round(statistics.fmean(full_times) * 1000, 3),
        "bare_mean_ms": round(statistics.fmean(bare_times) * 1000, 3),
        "overhead_ms": round(full_ms - bare_ms, 3),
        "gateway_overhead_fraction": round((full_ms - bare_ms) / full_ms, 4),
    }

"""The ASGI application the server runs: built from the environment, one per worker."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import urllib.parse
from collections.abc import AsyncIterator, Callable
from datetime import timedelta

import anyio.to_thread
import attrs
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client.multiprocess import mark_process_dead
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from commerce_core import Platform, StandardPricing
from commerce_core.events import publisher_from_url
from commerce_core.pricing import InMemoryPricingRules, PricingRules
from commerce_core.retry import RetryPolicy
from commerce_core.runner import BackgroundRunner
from commerce_core.telemetry import Telemetry, TelemetryFanout
from commerce_core_admin import create_admin
from commerce_core_gateway import Role
from commerce_core_gateway import create_app as create_gateway
from commerce_core_gateway.headers import KeepPeer, proxy_networks
from commerce_core_gateway.security import KeyRing
from commerce_core_otel import (
    OtelTelemetry,
    instrument_engines,
    trace_app,
    tracer_provider_from_env,
)
from commerce_core_prometheus import (
    HttpMetrics,
    Metrics,
    OutboxBacklog,
    PrometheusTelemetry,
    metrics_endpoint,
)
from commerce_core_sqlalchemy import SqlAlchemyOrderStore, SqlAlchemyPricingRules
from commerce_server.config import Settings

__all__ = ["build_platform", "create_app", "runner"]

log = logging.getLogger("commerce_server")

#: How long published events stay in the outbox tables (for inspection and replays).
EVENT_RETENTION = timedelta(days=7)


def build_platform(settings: Settings, telemetry: Telemetry | None = None) -> Platform:
    """The platform of the environment's stores, priced by the standard pricing, whose
    rules (shipping options, tax rates, vouchers) live in the order database."""
    platform = Platform.from_urls(
        orders=settings.orders_url, inventory=settings.inventory_url,
        payments=settings.payments_url, telemetry=telemetry,
        retry=RetryPolicy(total=settings.payment_retry_total),
        reservation_ttl=timedelta(seconds=settings.reservation_ttl), limits=settings.limits(),
        failed_order_retention=settings.failed_order_retention(),
        idempotency_retention=settings.idempotency_retention())
    platform.checkout.pricing = StandardPricing(
        pricing_rules(platform), prices_include_tax=settings.prices_include_tax)
    return platform


def pricing_rules(platform: Platform) -> PricingRules:
    """Rules kept beside the orders: in the order database (on its engine), or in memory
    for an order store in memory."""
    store = platform.order_store
    if isinstance(store, SqlAlchemyOrderStore):
        return SqlAlchemyPricingRules(store.engine, create_schema=False)
    return InMemoryPricingRules()


def runner(platform: Platform, settings: Settings) -> BackgroundRunner:
    """The worker's background work: recovery sweeps (the server swept once at start-up
    already), a relay per store, each with its own publisher connection, and the outbound
    webhooks (queued by the relays, sent by every worker: each delivery is leased to one).
    Every worker runs them; the outbox lease lets one worker publish a store's events at a
    time, and another take over within the lease (30 s) if that worker dies."""
    return BackgroundRunner(
        platform, recovery_interval=timedelta(seconds=settings.recovery_interval),
        recovery_grace=timedelta(seconds=settings.recovery_grace),
        publishers=lambda: publisher_from_url(settings.events_url),
        event_retention=EVENT_RETENTION, recover_at_start=False, name="commerce",
        webhooks=platform.webhooks)


def mount_admin(app: Starlette, platform: Platform, settings: Settings) -> None:
    """The admin console at ``/admin`` (and ``/admin`` itself sent on to ``/admin/``),
    ahead of the gateway's routes."""
    async def to_console(request: Request) -> Response:
        return RedirectResponse(f"{request.scope.get('root_path', '')}/admin/", 308)

    app.router.routes[0:0] = [Route("/admin", to_console, methods=["GET", "HEAD"]),
                              Mount("/admin", app=create_admin(platform, settings.admin()))]


def dependencies(settings: Settings) -> dict[str, Callable[[], None]]:
    """What ``/readyz`` checks besides the stores and the rate limits: the broker, when
    events go to one (a connection to its address within a second). Without it the server
    is degraded, not down: the outboxes keep the events until it is back."""
    parts = urllib.parse.urlsplit(settings.events_url)
    if parts.scheme.lower() in ("", "memory"):
        return {}
    default = 5671 if parts.scheme.lower() == "amqps" else 5672

    def broker() -> None:
        socket.create_connection((parts.hostname or "127.0.0.1", parts.port or default),
                                 timeout=1.0).close()

    return {"broker": broker}


def mount_metrics(app: Starlette, platform: Platform, settings: Settings,
                  metrics: Metrics) -> None:
    """``GET /metrics`` (for `Settings.metrics_allow` addresses and admin keys), every
    request counted and timed, the outbox backlogs read at each scrape, the stores' pools
    watched."""
    keys = KeyRing(settings.api_keys)
    gateway = app.state.gateway

    def admin_key(request: Request) -> bool:
        """An admin's key; a wrong one counts against the address's failed
        authentications, as on the API (past the limit, no key is even looked at)."""
        scheme, _, key = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            return False
        address = f"ip:{request.client.host if request.client else '-'}"
        if gateway.limiter.blocked(gateway.auth_failure_limit, "auth-failures",
                                   address) is not None:
            return False
        principal = keys.principal(key.strip())
        if principal is None or principal.role is not Role.ADMIN:
            gateway.limiter.hit(gateway.auth_failure_limit, "auth-failures", address)
            return False
        return True

    app.router.routes.insert(0, Route("/metrics", metrics_endpoint(
        metrics, allow=settings.metrics_allow, authorized=admin_key), methods=["GET"]))
    metrics.add(OutboxBacklog([("orders", platform.order_store),
                               ("inventory", platform.inventory_store)]))
    for name, store in (("orders", platform.order_store),
                        ("inventory", platform.inventory_store)):
        engine = getattr(store, "engine", None)
        if engine is not None:
            metrics.watch_pool(engine, name)
    app.add_middleware(HttpMetrics, metrics=metrics)


def create_app() -> Starlette:
    """Read the environment, build the platform, mount the gateway (uvicorn's factory);
    traced when ``OTEL_TRACES_EXPORTER`` names an exporter."""
    return build_app(Settings.from_env(os.environ), tracer_provider_from_env())


def build_app(settings: Settings, tracer_provider: TracerProvider | None = None) -> Starlette:
    """The server's app for these settings, traced by ``tracer_provider`` if given."""
    metrics = Metrics()
    telemetry: Telemetry = PrometheusTelemetry(metrics)
    if tracer_provider is not None:
        telemetry = TelemetryFanout([telemetry, OtelTelemetry(tracer_provider)])
    platform = build_platform(settings, telemetry)
    app = create_gateway(platform, attrs.evolve(settings.gateway(), telemetry=telemetry,
                                                dependencies=dependencies(settings)))
    mount_admin(app, platform, settings)
    mount_metrics(app, platform, settings, metrics)
    if tracer_provider is not None:
        instrument_engines([getattr(platform.order_store, "engine", None),
                            getattr(platform.inventory_store, "engine", None)],
                           tracer_provider=tracer_provider)
        trace_app(app, tracer_provider=tracer_provider)
    if settings.trusted_proxies.strip():
        # X-Forwarded-For is believed here, not in uvicorn, so that KeepPeer (outermost)
        # sees the proxy itself first: its X-Request-Id is taken only from that proxy
        # the networks as the gateway reads them ("10.0.0.1/8" is 10.0.0.0/8 for both)
        networks = proxy_networks(settings.trusted_proxies)
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts="*" if networks is None
                           else [str(network) for network in networks])
    # outermost: the peer kept, and an IPv4 peer of a dual-stack socket (--host ::) named as
    # IPv4 for the proxies, the metrics' allowed networks and the per-address limits
    app.add_middleware(KeepPeer)
    gateway_lifespan = app.router.lifespan_context  # the gateway's own (its sweeping)

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.threads
        background = runner(platform, settings)
        background.start()
        try:
            async with gateway_lifespan(app):
                yield
        finally:
            background.stop(timeout=5)
            platform.close()
            if tracer_provider is not None:
                tracer_provider.shutdown()  # the spans still batched are sent
            if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):  # its live gauges go with it
                mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]

    app.router.lifespan_context = lifespan
    return app

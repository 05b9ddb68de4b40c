"""The ASGI application the server runs: built from the environment, one per worker."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import AsyncIterator
from datetime import timedelta

from starlette.applications import Starlette

from commerce_core import CommerceError, Platform
from commerce_core_gateway import create_app as create_gateway
from commerce_server.config import Settings

__all__ = ["RECOVERY_INTERVAL", "build_platform", "create_app"]

log = logging.getLogger("commerce_server")

#: How often each worker sweeps for interrupted sagas and stale reservations.
RECOVERY_INTERVAL = timedelta(seconds=30)


def build_platform(settings: Settings) -> Platform:
    return Platform.from_urls(orders=settings.orders_url, inventory=settings.inventory_url,
                              payments=settings.payments_url)


def _recovery_loop(platform: Platform, stop: threading.Event) -> None:
    while not stop.wait(RECOVERY_INTERVAL.total_seconds()):
        try:
            report = platform.checkout.recover()
        except CommerceError:
            log.exception("recovery sweep failed; trying again in %s", RECOVERY_INTERVAL)
        else:
            if report.examined or report.expired_reservations:
                log.info("recovery: %s", report)


def create_app() -> Starlette:
    """Read the environment, build the platform, mount the gateway (uvicorn's factory)."""
    settings = Settings.from_env(os.environ)
    platform = build_platform(settings)
    app = create_gateway(platform, settings.gateway())

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        stop = threading.Event()
        sweeper = threading.Thread(target=_recovery_loop, args=(platform, stop),
                                   name="commerce-recovery", daemon=True)
        sweeper.start()
        try:
            yield
        finally:
            stop.set()
            sweeper.join(timeout=5)
            platform.close()

    app.router.lifespan_context = lifespan
    return app

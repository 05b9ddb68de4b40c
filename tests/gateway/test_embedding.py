"""The gateway mounted in a host application: its document names the mount, its lifespan
stops what it runs."""

from __future__ import annotations

import anyio
from starlette.applications import Starlette
from starlette.routing import Mount

from commerce_core_gateway import GatewayConfig, create_app, parse_api_keys
from commerce_core_gateway.security import SweptMemoryStorage
from tests.gateway.conftest import ADMIN, KEYS, Client, make_platform


def test_mounted_under_a_prefix_the_document_names_the_mount() -> None:
    gateway = create_app(make_platform(), GatewayConfig(api_keys=parse_api_keys(KEYS)))
    host = Starlette(routes=[Mount("/commerce", app=gateway)])
    client = Client(host)
    document = client.get("/commerce/openapi.json").json()
    assert document["servers"] == [{"url": "/commerce"}]
    assert "/v1/orders" in document["paths"]  # paths stay relative to the server
    assert client.get("/commerce/healthz").json() == {"status": "ok"}
    assert client.get("/commerce/v1/orders", key=ADMIN).status_code == 200
    # served at the root, it names no server
    assert "servers" not in Client(gateway).get("/openapi.json").json()


def test_the_app_s_lifespan_stops_what_it_runs() -> None:
    app = create_app(make_platform())
    storage = app.state.gateway.limiter.storage
    assert isinstance(storage, SweptMemoryStorage)
    assert storage in SweptMemoryStorage.sweeper._storages

    async def run() -> None:
        async with app.router.lifespan_context(app):
            assert storage in SweptMemoryStorage.sweeper._storages

    anyio.run(run)
    assert storage not in SweptMemoryStorage.sweeper._storages


def test_a_mount_path_unfit_for_a_document_is_not_echoed_into_it() -> None:
    gateway = create_app(make_platform())
    host = Starlette(routes=[Mount("/t/{tenant}", app=gateway)])
    document = Client(host).get('/t/"><script>/openapi.json').json()
    assert "servers" not in document
    assert Client(host).get("/t/acme/openapi.json").json()["servers"] == [{"url": "/t/acme"}]


def test_a_lifespan_entered_again_sweeps_again() -> None:
    app = create_app(make_platform())
    storage = app.state.gateway.limiter.storage

    async def run() -> None:
        async with app.router.lifespan_context(app):
            pass
        async with app.router.lifespan_context(app):
            assert storage in SweptMemoryStorage.sweeper._storages

    anyio.run(run)

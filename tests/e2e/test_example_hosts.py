"""The example hosts run as a new user would run them: their own sign-in decides who buys,
the background runner delivers events to their subscribers, and nothing is left running
when they stop."""

from __future__ import annotations

import importlib.util
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from commerce_core import Money, Platform
from tests.gateway.conftest import order_body
from tests.helpers import until


def _example(name: str) -> Any:
    """An example host's module, loaded from its file (``examples`` is not a package: the
    examples are run, not imported by the library)."""
    path = Path(__file__).resolve().parents[2] / "examples" / name / "app.py"
    spec = importlib.util.spec_from_file_location(f"example_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fastapi_app(platform: Platform, **options: Any) -> Any:
    return _example("fastapi_host").create_app(platform, **options)


def flask_app(platform: Platform, **options: Any) -> Any:
    return _example("flask_host").create_app(platform, **options)


def _platform(folder: Path) -> Platform:
    platform = Platform.from_urls(orders=f"sqlite:///{folder}/orders.db",
                                  inventory=f"sqlite:///{folder}/inventory.db",
                                  payments="sandbox://")
    platform.inventory.upsert_warehouse("BER", name="Berlin")
    platform.inventory.upsert_product("MUG", name="Mug", price=Money(1250, "EUR"))
    platform.inventory.adjust_stock("MUG", "BER", delta=10, reason="initial")
    return platform


def _runner_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("commerce-")]


def test_the_fastapi_host_sells_to_its_own_users(tmp_path: Path) -> None:
    app = fastapi_app(_platform(tmp_path), recovery_interval=timedelta(seconds=1))
    shop = app.state.shop

    async def run() -> None:
        async with app.router.lifespan_context(app), httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://host") as client:
            body = order_body(("MUG", 2))
            assert (await client.post("/commerce/v1/orders", json=body, headers={
                "Idempotency-Key": "k1"})).status_code == 401
            assert (await client.post("/login", json={"user": "alice", "password": "no"})
                    ).status_code == 401
            assert (await client.post("/login", json={"user": "alice",
                                                      "password": "wonderland"})
                    ).status_code == 200
            placed = await client.post("/commerce/v1/orders", json=body,
                                       headers={"Idempotency-Key": "k1"})
            assert placed.status_code == 201, placed.text
            order = placed.json()
            assert order["customer_id"] == "alice"  # the host's user, not a key
            assert (await client.get("/account/orders")).json() == [
                {"id": order["id"], "status": "confirmed", "total": "25.00 EUR"}]
            parcel = {"carrier": "DHL", "tracking_number": "T1"}
            # a customer cannot ship; the host's staff can, through the same mount
            assert (await client.post(f"/commerce/v1/orders/{order['id']}/ship",
                                      json=parcel)).status_code == 403
            client.cookies.clear()
            await client.post("/login", json={"user": "root", "password": "hunter2"})
            shipped = await client.post(f"/commerce/v1/orders/{order['id']}/ship",
                                        json=parcel)
            assert shipped.status_code == 200, shipped.text
            assert until(lambda: len(shop.mails) == 1)
            assert shop.mails == [f"to alice: order {order['id']} confirmed, 25.00 EUR"]
            assert (await client.get("/mails")).json() == shop.mails
            document = (await client.get("/commerce/openapi.json")).json()
            assert document["servers"] == [{"url": "/commerce"}]
            assert _runner_threads()

    anyio.run(run)
    assert until(lambda: not _runner_threads())  # the lifespan stopped the runner


def test_the_flask_host_reads_and_answers_the_contract_s_json(tmp_path: Path) -> None:
    platform = _platform(tmp_path)
    app = flask_app(platform, secret_key="test", recovery_interval=timedelta(seconds=1))
    try:
        client = app.test_client()
        assert client.post("/checkout", json=order_body(("MUG", 1)),
                           headers={"Idempotency-Key": "k1"}).status_code == 401
        client.post("/login", json={"user": "alice", "password": "wonderland"})
        # every problem of the body at once, each with its path
        bad = client.post("/checkout", headers={"Idempotency-Key": "k0"},
                          json={"lines": [{"sku": "MUG", "quantity": 0}], "payment": {},
                                "shipping_address": {"name": "A"}})
        assert bad.status_code == 422 and bad.content_type == "application/problem+json"
        paths = {error["path"] for error in bad.get_json()["errors"]}
        assert {"lines[0].quantity", "payment.token", "shipping_address.city"} <= paths
        placed = client.post("/checkout", json=order_body(("MUG", 2)),
                             headers={"Idempotency-Key": "k1"})
        assert placed.status_code == 201, placed.get_json()
        order = placed.get_json()
        assert order["customer_id"] == "alice" and order["total"]["amount"] == 2500
        again = client.post("/checkout", json=order_body(("MUG", 2)),
                            headers={"Idempotency-Key": "k1"})
        assert again.get_json()["id"] == order["id"]  # the same order, charged once
        assert client.get(f"/orders/{order['id']}").get_json() == again.get_json()
        platform.checkout.ship(order["id"], carrier="DHL", tracking_number="T1")
        back = client.post(f"/orders/{order['id']}/returns",
                           json={"lines": [{"sku": "MUG", "quantity": 1}], "reason": "chipped"})
        assert back.status_code == 201 and back.get_json()["status"] == "requested"
        refused = client.post(f"/orders/{order['id']}/returns",
                              json={"lines": [{"sku": "MUG", "quantity": 5}], "reason": "x"})
        assert refused.status_code == 409
        assert refused.get_json()["type"] == "/problems/return-exceeds-shipped"
        mails = app.extensions["commerce"]["mails"]
        assert until(lambda: len(mails) == 1)
        assert mails == [f"to alice: order {order['id']} confirmed"]
    finally:
        app.extensions["commerce"]["shutdown"]()
    assert until(lambda: not _runner_threads())


@pytest.fixture(autouse=True)
def _no_runner_left() -> None:
    assert until(lambda: not _runner_threads())

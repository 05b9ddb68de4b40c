"""An in-process HTTP client for the gateway (httpx over the ASGI transport)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anyio
import httpx
import pytest

from commerce_core import Money, Platform, RetryPolicy, StandardPricing
from commerce_core.pricing import InMemoryPricingRules
from commerce_core.testing import InMemoryInventoryStore, InMemoryOrderStore, SandboxPaymentGateway
from commerce_core_gateway import GatewayConfig, create_app, parse_api_keys

KEYS = "adm=admin,al=customer:alice,bo=customer:bob"
ADMIN, ALICE, BOB = "adm", "al", "bo"


class Client:
    """A synchronous client: each request runs the ASGI app in a fresh event loop."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def request(self, method: str, url: str, *, key: str | None = None,
                headers: dict[str, str] | None = None, **kwargs: Any) -> httpx.Response:
        sent = dict(headers or {})
        if key is not None:
            sent["Authorization"] = f"Bearer {key}"

        async def send() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as c:
                return await c.request(method, url, headers=sent, **kwargs)

        return anyio.run(send)

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)

    def put(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("PUT", url, **kwargs)


def seed_shop(platform: Platform) -> None:
    platform.inventory.upsert_warehouse("BER", name="Berlin")
    platform.inventory.upsert_product("MUG", name="Mug", price=Money(1250, "EUR"))
    platform.inventory.upsert_product("POT", name="Teapot", price=Money(3900, "EUR"))
    platform.inventory.upsert_product("OLD", name="Retired", price=Money(100, "EUR"), active=False)
    platform.inventory.upsert_product("USD", name="Import", price=Money(500, "USD"))
    for sku, units in (("MUG", 10), ("POT", 2), ("USD", 5)):
        platform.inventory.adjust_stock(sku, "BER", delta=units, reason="initial")


def make_platform() -> Platform:
    """A platform in memory, priced by the standard pricing (no rules yet: the lines alone,
    until a test configures shipping, taxes or vouchers over HTTP)."""
    return Platform.from_adapters(
        order_store=InMemoryOrderStore(), inventory_store=InMemoryInventoryStore(),
        payment_gateway=SandboxPaymentGateway(), retry=RetryPolicy.immediate(),
        pricing=StandardPricing(InMemoryPricingRules()))


@pytest.fixture
def shop() -> Iterator[Platform]:
    platform = make_platform()
    seed_shop(platform)
    yield platform
    platform.close()


@pytest.fixture
def client(shop: Platform) -> Client:
    return Client(create_app(shop, GatewayConfig(
        api_keys=parse_api_keys(KEYS), rate_limit="1000/second",
        checkout_rate_limit="1000/second")))


def idem(key: str) -> dict[str, str]:
    """The ``Idempotency-Key`` header, for the POSTs that need one."""
    return {"Idempotency-Key": key}


def order_body(*lines: tuple[str, int], token: str = "tok_visa") -> dict[str, Any]:
    return {
        "lines": [{"sku": sku, "quantity": quantity} for sku, quantity in lines],
        "payment": {"token": token},
        "shipping_address": {"name": "Alice", "line1": "Main St 1", "line2": None,
                             "city": "Berlin", "postal_code": "10115", "country": "DE"},
    }

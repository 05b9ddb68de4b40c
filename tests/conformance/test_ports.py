"""Every store and gateway in this repository passes the public conformance suites."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from commerce_core.events import OutboxStore
from commerce_core.inventory import InventoryStore
from commerce_core.orders import OrderStore
from commerce_core.pricing import InMemoryPricingRules, PricingRules
from commerce_core.testing import SandboxPaymentGateway
from commerce_core.testing.conformance import (
    InventoryStoreConformance,
    OrderReportsConformance,
    OrderStoreConformance,
    OutboxConformance,
    PaymentGatewayConformance,
    PricingRulesConformance,
    WebhookStoreConformance,
)
from commerce_core.webhooks import InMemoryWebhookStore, WebhookStore
from commerce_core_sqlalchemy import (
    SqlAlchemyOrderStore,
    SqlAlchemyPricingRules,
    SqlAlchemyWebhookStore,
)
from tests.conftest import make_stores


@pytest.fixture
def order_store(backend: str, tmp_path: Path) -> Iterator[OrderStore]:
    store, other = make_stores(backend, tmp_path)
    other.close()
    yield store
    store.close()


@pytest.fixture
def inventory_store(backend: str, tmp_path: Path) -> Iterator[InventoryStore]:
    other, store = make_stores(backend, tmp_path)
    other.close()
    yield store
    store.close()


@pytest.fixture(params=["orders", "inventory"])
def outbox_store(
    request: pytest.FixtureRequest, backend: str, tmp_path: Path
) -> Iterator[OutboxStore]:
    orders, inventory = make_stores(backend, tmp_path)
    store, other = (orders, inventory) if request.param == "orders" else (inventory, orders)
    other.close()
    yield store
    store.close()


@pytest.fixture
def pricing_rules(backend: str, tmp_path: Path) -> Iterator[PricingRules]:
    if backend == "memory":
        yield InMemoryPricingRules()
        return
    orders, inventory = make_stores(backend, tmp_path)
    inventory.close()
    assert isinstance(orders, SqlAlchemyOrderStore)
    yield SqlAlchemyPricingRules(orders.engine)
    orders.close()


@pytest.fixture
def webhook_store(backend: str, tmp_path: Path) -> Iterator[WebhookStore]:
    if backend == "memory":
        yield InMemoryWebhookStore()
        return
    orders, inventory = make_stores(backend, tmp_path)
    inventory.close()
    assert isinstance(orders, SqlAlchemyOrderStore)
    yield SqlAlchemyWebhookStore(orders.engine)
    orders.close()


@pytest.fixture(params=["memory", "file"])
def payment_gateway(request: pytest.FixtureRequest, tmp_path: Path) -> SandboxPaymentGateway:
    if request.param == "memory":
        return SandboxPaymentGateway()
    return SandboxPaymentGateway(tmp_path / "sandbox.db")


@pytest.fixture
def gateway_tokens() -> dict[str, str]:
    return {"approve": "tok_visa", "decline": "tok_declined"}


class TestInventoryStore(InventoryStoreConformance):
    """Runs once per backend (the ``backend`` fixture is parametrised)."""


class TestOrderStore(OrderStoreConformance):
    """Runs once per backend."""


class TestOrderReports(OrderReportsConformance):
    """The console's reports, on every backend that offers them (all of ours)."""


class TestOutbox(OutboxConformance):
    """Both stores' outboxes, on every backend."""


class TestSandboxGateway(PaymentGatewayConformance):
    """The sandbox behaves like a provider should."""


class TestPricingRules(PricingRulesConformance):
    """The standard pricing's rules in memory and in the order database, on every backend."""


class TestWebhookStore(WebhookStoreConformance):
    """Runs once per backend."""

"""The composition root: adapters found by URL scheme, clear errors, no import-time effects."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

import commerce_core._registry as registry
from commerce_core import AdapterNotInstalled, InvalidInput, Platform
from commerce_core.testing import (
    InMemoryInventoryStore,
    InMemoryOrderStore,
    SandboxPaymentGateway,
)
from commerce_core_sqlalchemy import SqlAlchemyInventoryStore, SqlAlchemyOrderStore


def test_urls_pick_adapters_through_their_entry_points(tmp_path: Path) -> None:
    with Platform.from_urls(
        orders=f"sqlite:///{tmp_path}/o/orders.db", inventory="memory://", payments="sandbox://",
    ) as platform:
        assert isinstance(platform.order_store, SqlAlchemyOrderStore)
        assert isinstance(platform.payment_gateway, SandboxPaymentGateway)
    assert (tmp_path / "o" / "orders.db").exists()  # the folder is created for the file


def test_the_two_stores_are_separate_databases(tmp_path: Path) -> None:
    with Platform.from_urls(orders=f"sqlite:///{tmp_path}/orders.db",
                            inventory=f"sqlite:///{tmp_path}/inventory.db",
                            payments="sandbox://") as platform:
        assert isinstance(platform.inventory_store, SqlAlchemyInventoryStore)
        assert isinstance(platform.order_store, SqlAlchemyOrderStore)
        orders_tables = set(sa.inspect(platform.order_store.engine).get_table_names())
        inventory_tables = set(sa.inspect(platform.inventory_store.engine).get_table_names())
    assert orders_tables == {"orders", "order_lines", "payments", "idempotency_keys",
                             "outbox", "outbox_leases", "payment_notifications",
                             "voucher_usage", "voucher_redemptions", "shipping_options",
                             "tax_rates", "vouchers", "commerce_orders_version"}
    assert inventory_tables == {"products", "warehouses", "stock_levels", "reservations",
                                "reservation_lines", "stock_movements", "outbox",
                                "outbox_leases", "commerce_inventory_version"}


def test_an_unknown_scheme_says_what_to_install() -> None:
    with pytest.raises(AdapterNotInstalled, match="pip install") as caught:
        Platform.from_urls(orders="memory://", inventory="memory://", payments="adyen://x")
    assert caught.value.scheme == "adyen"


def test_a_known_scheme_without_its_adapter_names_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(registry, "entry_points", lambda **_: ())
    with pytest.raises(AdapterNotInstalled, match=r"commerce-core\[sqlalchemy\]"):
        Platform.from_urls(orders="sqlite:///x.db", inventory="memory://", payments="sandbox://")


def test_an_adapter_whose_import_fails_gets_the_install_hint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Broken:
        def load(self) -> object:
            raise ModuleNotFoundError("No module named 'psycopg'")

    monkeypatch.setattr(registry, "entry_points", lambda **_: (Broken(),))
    with pytest.raises(AdapterNotInstalled, match="psycopg"):
        Platform.from_urls(orders="postgresql+psycopg://localhost/x", inventory="memory://",
                           payments="sandbox://")


def test_a_missing_database_driver_gets_the_install_hint() -> None:
    # the adapter is installed, but mysqlclient (the default MySQL driver) is not
    with pytest.raises(AdapterNotInstalled, match=r"commerce-core\[sqlalchemy\].*MySQLdb"):
        Platform.from_urls(orders="mysql://root@127.0.0.1/x", inventory="memory://",
                           payments="sandbox://")


def test_an_unknown_database_driver_is_invalid_input() -> None:
    with pytest.raises(InvalidInput, match="url"):
        Platform.from_urls(orders="postgresql+nosuchdriver://localhost/x",
                           inventory="memory://", payments="sandbox://")


def test_a_url_without_a_scheme_is_invalid_input() -> None:
    with pytest.raises(InvalidInput):
        Platform.from_urls(orders="orders.db", inventory="memory://", payments="sandbox://")


def test_adapter_instances_can_be_wired_by_hand() -> None:
    store = InMemoryOrderStore()
    platform = Platform.from_adapters(order_store=store, inventory_store=InMemoryInventoryStore(),
                                      payment_gateway=SandboxPaymentGateway())
    assert platform.order_store is store and platform.checkout.order_store is store


def test_importing_the_library_loads_no_infrastructure_and_reads_no_environment() -> None:
    code = (
        "import sys, os; before = dict(os.environ); import commerce_core, commerce_core.testing;"
        "bad = [m for m in ('sqlalchemy', 'commerce_core_sqlalchemy', 'pytest')"
        "       if m in sys.modules];"
        "import threading; assert threading.active_count() == 1;"
        "print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"

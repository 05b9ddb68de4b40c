"""The composition root: adapters found by URL scheme, clear errors, no import-time effects."""

from __future__ import annotations

import shlex
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa

import commerce_core._registry as registry
from commerce_core import AdapterBroken, AdapterNotInstalled, InvalidInput, Platform
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
                             "tax_rates", "vouchers", "webhook_endpoints",
                             "webhook_deliveries", "commerce_orders_version"}
    assert inventory_tables == {"products", "warehouses", "stock_levels", "reservations",
                                "reservation_lines", "stock_movements", "outbox",
                                "outbox_leases", "commerce_inventory_version"}


def test_an_unknown_scheme_says_what_to_install() -> None:
    with pytest.raises(AdapterNotInstalled, match="install a package that registers the "
                       "'adyen' scheme") as caught:
        Platform.from_urls(orders="memory://", inventory="memory://", payments="adyen://x")
    assert caught.value.scheme == "adyen"


def test_a_known_scheme_without_its_adapter_names_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(registry, "entry_points", lambda **_: ())
    with pytest.raises(AdapterNotInstalled, match=r"commerce-core\[sqlalchemy\]"):
        Platform.from_urls(orders="sqlite:///x.db", inventory="memory://", payments="sandbox://")


class _Entry:
    """An entry point as `importlib.metadata` gives it, loading ``loads``."""

    name, value = "postgresql", "broken_adapter:make"

    def __init__(self, loads: Callable[[], object]) -> None:
        self._loads = loads

    def load(self) -> object:
        return self._loads()


def _installed(monkeypatch: pytest.MonkeyPatch, loads: Callable[[], object]) -> None:
    monkeypatch.setattr(registry, "entry_points", lambda **_: (_Entry(loads),))


def _from(url: str) -> Platform:
    return Platform.from_urls(orders=url, inventory="memory://", payments="sandbox://")


def test_an_installed_adapter_whose_import_fails_is_broken_not_missing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def load() -> object:
        raise ModuleNotFoundError("No module named 'psycopg'")

    _installed(monkeypatch, load)
    with pytest.raises(AdapterBroken) as caught:
        _from("postgresql+psycopg://localhost/x")
    message = str(caught.value)
    assert "'postgresql = broken_adapter:make'" in message
    assert "is installed but cannot be imported: No module named 'psycopg'" in message
    assert "pip install 'commerce-core[sqlalchemy]' 'psycopg[binary]'" in message


@pytest.mark.parametrize(("loads", "problem"), [
    (lambda: (_ for _ in ()).throw(AttributeError("module has no attribute 'make'")),
     "does not load: AttributeError"),
    (lambda: "not a factory", "which is not callable"),
    (lambda: (lambda url: object()), "without the port's unit_of_work, close (object)"),
])
def test_a_broken_entry_point_fails_when_the_platform_is_built_naming_it(
    monkeypatch: pytest.MonkeyPatch, loads: Callable[[], object], problem: str,
) -> None:
    _installed(monkeypatch, loads)
    with pytest.raises(AdapterBroken) as caught:
        _from("postgresql+psycopg://localhost/x")
    assert caught.value.entry_point == "postgresql = broken_adapter:make"
    assert problem in str(caught.value)


def test_the_install_hint_can_be_pasted_into_a_shell() -> None:
    hint = registry.install_hint("postgresql")
    assert shlex.split(hint) == ["pip", "install", "commerce-core[sqlalchemy]", "psycopg[binary]"]


def test_postgres_urls_say_which_scheme_to_write() -> None:
    with pytest.raises(AdapterNotInstalled) as caught:
        _from("postgres://app@db/shop")
    assert "did you mean postgresql+psycopg://" in str(caught.value)


def test_a_missing_database_driver_gets_the_install_hint() -> None:
    # the adapter is installed, but mysqlclient (SQLAlchemy's default MySQL driver) is not
    with pytest.raises(AdapterNotInstalled) as caught:
        _from("mysql://root@127.0.0.1/x")
    message = str(caught.value)
    assert "pip install 'commerce-core[sqlalchemy]' 'pymysql'" in message
    assert "mysql+pymysql://" in message and "MySQLdb" in message


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


def test_a_scheme_two_packages_register_is_refused_naming_both(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Which of two entry points would load depends on the order of sys.path: a package
    registering a scheme another serves must not get the other's adapter silently."""
    from importlib.metadata import EntryPoint  # noqa: PLC0415

    group = "commerce_core.order_stores"
    found = (EntryPoint("memory", "commerce_core.testing:InMemoryOrderStore.from_url", group),
             EntryPoint("memory", "my_store:MyStore.from_url", group))
    monkeypatch.setattr(registry, "entry_points", lambda **_: found)
    with pytest.raises(AdapterBroken) as caught:
        _from("memory://")
    message = str(caught.value)
    assert "memory = commerce_core.testing:InMemoryOrderStore.from_url" in message
    assert "memory = my_store:MyStore.from_url" in message
    assert "registered by more than one installed package" in message

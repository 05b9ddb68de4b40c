"""Both stores in one database: on PostgreSQL with a schema each; anywhere else, or without
the option, a clear error before anything is written."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from commerce_core import InvalidInput, Platform, StoreError
from commerce_core.testing import check_invariants
from tests.conftest import SERVER_URLS, SERVERS, _admin, order, require_server, seed

DATABASE = "cc_shared_one_database"


@pytest.fixture
def one_postgres_database() -> Iterator[str]:
    require_server("postgresql", *SERVERS["postgresql"])
    _admin("postgresql", [f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)",
                          f"CREATE DATABASE {DATABASE}"])
    yield SERVER_URLS["postgresql"].format(db=DATABASE)
    _admin("postgresql", [f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)"])


def _tables(url: str) -> set[tuple[str, str]]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(sa.text(
                "SELECT table_schema, table_name FROM information_schema.tables "
                "WHERE table_schema NOT IN ('pg_catalog', 'information_schema')"))
            return {(schema, name) for schema, name in rows}
    finally:
        engine.dispose()


def test_two_stores_share_a_postgres_database_with_a_schema_each(
    one_postgres_database: str,
) -> None:
    url = one_postgres_database
    with Platform.from_urls(orders=f"{url}?schema=shop_orders",
                            inventory=f"{url}?schema=shop_inventory",
                            payments="sandbox://") as platform:
        seed(platform, {"MUG": 5})
        placed = platform.checkout.place_order(order(("MUG", 2)), idempotency_key="k")
        platform.checkout.ship(placed.id, carrier="DHL", tracking_number="T1")
        platform.checkout.recover()
        check_invariants(platform.order_store, platform.inventory_store)
    tables = _tables(url)
    assert ("shop_orders", "outbox") in tables and ("shop_inventory", "outbox") in tables
    assert ("shop_orders", "commerce_orders_version") in tables
    assert ("shop_inventory", "products") in tables
    assert not [t for t in tables if t[0] == "public"]  # nothing in the default schema
    # opened again (a restart), each finds its own tables where it left them
    with Platform.from_urls(orders=f"{url}?schema=shop_orders",
                            inventory=f"{url}?schema=shop_inventory",
                            payments="sandbox://") as again:
        assert again.orders.get(placed.id).status == "shipped"
        assert again.inventory.stock("MUG").on_hand == 3


def test_without_a_schema_the_second_store_is_refused_before_it_writes(
    one_postgres_database: str,
) -> None:
    url = one_postgres_database
    Platform.from_urls(orders=url, inventory="memory://", payments="sandbox://").close()
    before = _tables(url)
    with pytest.raises(StoreError) as caught:
        Platform.from_urls(orders="memory://", inventory=url, payments="sandbox://")
    message = str(caught.value)
    assert "holds the orders store's tables" in message and "?schema=" in message
    assert "nothing was written" in message
    assert _tables(url) == before


def test_the_same_sqlite_file_for_both_stores_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/shop.db"
    with pytest.raises(StoreError, match="holds the orders store's tables"):
        Platform.from_urls(orders=url, inventory=url, payments="sandbox://")


@pytest.mark.parametrize(("url", "says"), [
    ("sqlite:///x.db?schema=orders", "a file of its own"),
    ("mysql+pymysql://root@127.0.0.1/x?schema=orders", "a schema is a database"),
    ("postgresql+psycopg://postgres@127.0.0.1/x?schema=Orders;drop", "lower-case letters"),
    ("postgresql+psycopg://postgres@127.0.0.1/x?schema=1st", "not starting with a digit"),
    ("postgresql+psycopg://postgres@127.0.0.1/x?schema=", "schema is empty"),
    ("postgresql+psycopg://postgres@127.0.0.1/x?schema=a&schema=b", "more than once"),
])
def test_a_schema_where_there_is_none_or_a_bad_name_is_invalid(url: str, says: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        Platform.from_urls(orders=url, inventory="memory://", payments="sandbox://")
    assert says in caught.value.errors[0].message

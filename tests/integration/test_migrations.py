"""Alembic: an empty database migrated to head matches the models, on every backend; a
database from before migrations is adopted; concurrent starts migrate once; downgrades work.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from commerce_core.orders import OrderReports, Return, ReturnLine, ReturnStatus
from commerce_core_sqlalchemy import SqlAlchemyInventoryStore, SqlAlchemyOrderStore
from commerce_core_sqlalchemy._base import create_store_engine
from commerce_core_sqlalchemy.migrations import (
    BASELINE,
    STORES,
    current,
    ensure_schema,
    head,
    metadata,
    upgrade,
)
from commerce_core_sqlalchemy.orders import _return_values
from tests.conftest import require, server_urls

BACKENDS = ["sqlite", "postgresql", "mariadb"]


def _empty_database(backend: str, folder: Path, store: str) -> sa.Engine:
    if backend == "sqlite":
        return create_store_engine(f"sqlite:///{folder}/{store}.db")
    require(backend)
    orders_url, inventory_url = server_urls(backend, folder)
    return create_store_engine(orders_url if store == "orders" else inventory_url)


def _differences(engine: sa.Engine, store: str) -> list[object]:
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "version_table": STORES[store][1]})
        return list(compare_metadata(context, metadata(store)))


@pytest.mark.parametrize("store", ["orders", "inventory"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_an_empty_database_migrated_to_head_matches_the_models(
    backend: str, store: str, tmp_path: Path
) -> None:
    engine = _empty_database(backend, tmp_path, store)
    assert current(engine, store) is None
    upgrade(engine, store)
    assert current(engine, store) == head(store)
    assert _differences(engine, store) == []
    tables = set(sa.inspect(engine).get_table_names())
    assert set(metadata(store).tables) | {STORES[store][1]} == tables
    engine.dispose()


@pytest.mark.parametrize("store", ["orders", "inventory"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_downgrade_to_nothing_and_up_again(backend: str, store: str, tmp_path: Path) -> None:
    engine = _empty_database(backend, tmp_path, store)
    upgrade(engine, store)
    from alembic import command  # noqa: PLC0415

    from commerce_core_sqlalchemy.migrations import alembic_config  # noqa: PLC0415

    with engine.connect() as connection:
        command.downgrade(alembic_config(store, connection), "base")
        connection.commit()
    assert set(sa.inspect(engine).get_table_names()) <= {STORES[store][1]}
    upgrade(engine, store)
    assert _differences(engine, store) == []
    engine.dispose()


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_database_made_before_migrations_is_adopted(backend: str, tmp_path: Path) -> None:
    """0.1.0 created its tables without Alembic: the first open stamps and upgrades them,
    keeping the rows."""
    engine = _empty_database(backend, tmp_path, "inventory")
    upgrade(engine, "inventory", BASELINE["inventory"])
    with engine.begin() as connection:
        connection.execute(sa.text(
            "INSERT INTO warehouses (code, name) VALUES ('BER', 'Berlin')"))
        connection.execute(sa.text(f"DROP TABLE {STORES['inventory'][1]}"))
    assert current(engine, "inventory") is None
    store = SqlAlchemyInventoryStore(engine)  # opening migrates
    assert current(engine, "inventory") == head("inventory")
    with store.unit_of_work() as uow:
        assert [w.code for w in uow.warehouses.list()] == ["BER"]
    store.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_workers_starting_together_migrate_once(backend: str, tmp_path: Path) -> None:
    """Four workers open the same empty order database at once: the migration lock lets one
    migrate; the others wait and find it done."""
    engine = _empty_database(backend, tmp_path, "orders")
    url = engine.url.render_as_string(hide_password=False)
    engine.dispose()
    start = threading.Barrier(4, timeout=30)
    errors: list[BaseException] = []

    def open_store() -> None:
        start.wait()
        try:
            SqlAlchemyOrderStore.from_url(url).close()
        except BaseException as exc:  # noqa: BLE001 - asserted on below
            errors.append(exc)

    threads = [threading.Thread(target=open_store) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    engine = create_store_engine(url)
    assert current(engine, "orders") == head("orders")
    assert _differences(engine, "orders") == []
    ensure_schema(engine, "orders")  # at head: nothing to do, and no error
    engine.dispose()


def test_the_alembic_command_line_works_on_either_tree(tmp_path: Path) -> None:
    """``alembic -c adapters/sqlalchemy/alembic.ini -n <store> -x url=...``, as the
    deployment page shows it."""
    config = Path(__file__).resolve().parents[2] / "adapters" / "sqlalchemy" / "alembic.ini"
    alembic = str(Path(sys.executable).with_name("alembic"))
    for store in ("orders", "inventory"):
        url = f"sqlite:///{tmp_path}/{store}.db"
        base = [alembic, "-c", str(config), "-n", store, "-x", f"url={url}"]
        subprocess.run([*base, "upgrade", "head"], check=True, capture_output=True,
                       timeout=120)
        shown = subprocess.run([*base, "current"], check=True, capture_output=True,
                               text=True, timeout=120).stdout
        assert f"{head(store)} (head)" in shown
        engine = create_store_engine(url)
        assert _differences(engine, store) == []
        engine.dispose()


@pytest.mark.parametrize("backend", BACKENDS)
def test_orders_from_before_pricing_keep_their_totals(backend: str, tmp_path: Path) -> None:
    """An order written at o0005 (no adjustments, taxes, e-mail or metadata) reads back
    after o0006 as an order of its lines alone: its total is what it was."""
    engine = _empty_database(backend, tmp_path, "orders")
    upgrade(engine, "orders", "o0005")
    with engine.begin() as connection:
        connection.execute(sa.text(
            "INSERT INTO orders (id, customer_id, status, saga_step, currency, "
            "shipping_address, payment_token, history, created_at, updated_at, version) "
            "VALUES ('ord_old', 'alice', 'confirmed', 'done', 'EUR', :address, 'tok_visa', "
            "'[]', :at, :at, 3)"),
            {"address": '{"name": "A", "line1": "B", "line2": null, "city": "C", '
                        '"postal_code": "1", "country": "DE"}',
             "at": "2026-11-30 10:00:00"})
        connection.execute(sa.text(
            "INSERT INTO order_lines (order_id, position, sku, name, quantity, unit_amount, "
            "currency) VALUES ('ord_old', 0, 'MUG', 'Mug', 2, 1250, 'EUR')"))
    store = SqlAlchemyOrderStore(engine)  # opening migrates to head
    assert current(engine, "orders") == head("orders")
    with store.unit_of_work() as uow:
        old = uow.orders.get("ord_old")
        assert old is not None
        assert (old.adjustments, old.taxes, old.voucher_code, old.email, old.metadata) == (
            (), (), None, None, {})
        assert old.total.amount == old.subtotal.amount == 2500
        assert uow.redemptions.used("ANY") == 0
    store.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_orders_with_returns_before_o0010_are_counted_as_waiting(backend: str,
                                                                   tmp_path: Path) -> None:
    """o0010 fills the new ``open_returns`` column of the orders that had returns already:
    the console then finds the ones waiting for an admin."""
    engine = _empty_database(backend, tmp_path, "orders")
    upgrade(engine, "orders", "o0009")
    at = datetime(2026, 12, 1, tzinfo=UTC)

    def returns(order_id: str, *statuses: ReturnStatus) -> str:
        return json.dumps([_return_values(Return(
            id=f"ret_{order_id}_{n}", order_id=order_id, lines=(ReturnLine("MUG", 1),),
            reason="no", status=status, requested_at=at, updated_at=at))
            for n, status in enumerate(statuses, 1)])

    with engine.begin() as connection:
        for order_id, found in (("ord_a", returns("ord_a", ReturnStatus.REQUESTED)),
                                ("ord_b", returns("ord_b", ReturnStatus.REFUNDED,
                                                  ReturnStatus.REJECTED)),
                                ("ord_c", returns("ord_c", ReturnStatus.RECEIVED,
                                                  ReturnStatus.REQUESTED)),
                                ("ord_d", "[]")):
            connection.execute(sa.text(
                "INSERT INTO orders (id, customer_id, status, saga_step, currency, "
                "shipping_address, payment_token, history, created_at, updated_at, version, "
                "returns) VALUES (:id, 'alice', 'shipped', 'done', 'EUR', :address, "
                "'tok_visa', '[]', :at, :at, 3, :returns)"),
                {"id": order_id, "returns": found, "at": "2026-11-30 10:00:00",
                 "address": '{"name": "A", "line1": "B", "line2": null, "city": "C", '
                            '"postal_code": "1", "country": "DE"}'})
    store = SqlAlchemyOrderStore(engine)  # opening migrates to head
    with engine.connect() as connection:
        counts = {row.id: row.open_returns for row in connection.execute(sa.text(
            "SELECT id, open_returns FROM orders ORDER BY id"))}
    assert counts == {"ord_a": 1, "ord_b": 0, "ord_c": 2, "ord_d": 0}
    with store.unit_of_work() as uow:
        reports = uow.orders
        assert isinstance(reports, OrderReports)
        assert [o.id for o in reports.open_returns(limit=10)] == ["ord_c", "ord_a"]
    store.close()

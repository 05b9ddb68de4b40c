"""The stores' prepared statements (run on the driver's cursor, `_prepared`) write and read
exactly what SQLAlchemy's own execution path writes and reads, on every SQL backend; their
errors are SQLAlchemy's (a taken key is a `Conflict`, a lost connection is transient and
renewed); listeners that must see every statement still see every statement."""

from __future__ import annotations

import itertools
import logging
import threading
import types
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event

import commerce_core.clock
import commerce_core.testing.sandbox
from commerce_core import (
    CommerceError,
    Conflict,
    Money,
    Platform,
    RetryPolicy,
    TransientStoreError,
)
from commerce_core.inventory import LineRequest
from commerce_core.testing import ManualClock, SandboxPaymentGateway
from commerce_core_sqlalchemy import SqlAlchemyInventoryStore, SqlAlchemyOrderStore, _prepared
from commerce_core_sqlalchemy._base import UnitOfWork, create_store_engine, inserting
from commerce_core_sqlalchemy.inventory import _PRODUCTS, stock_levels
from tests.conftest import order, require, seed, server_urls
from tests.helpers import kill_own_connection

SQL_BACKENDS = ["sqlite", "postgresql", "mariadb"]


@pytest.fixture(autouse=True)
def _statement_log_off() -> Iterator[None]:
    """SQLAlchemy's statement log off, as it is unless a host turns it on (SQLAlchemy sets
    its loggers to WARNING): an earlier test that configured logging must not send these
    tests' statements the usual way."""
    loggers = [logging.getLogger(name) for name in
               ("sqlalchemy", "sqlalchemy.engine", "sqlalchemy.engine.Engine")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def _urls(backend: str, folder: Path) -> tuple[str, str]:
    if backend == "sqlite":
        return f"sqlite:///{folder}/orders.db", f"sqlite:///{folder}/inventory.db"
    require(backend)
    return server_urls(backend, folder)


def _statements(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
    """A listener that must see every statement (as the OpenTelemetry instrumentation)."""
    _SEEN.append(statement)


_SEEN: list[str] = []


def _deterministic_ids(monkeypatch: pytest.MonkeyPatch) -> None:
    """`new_id` from a counter and a fixed clock: two runs make the same ids."""
    counter = itertools.count(1)
    monkeypatch.setattr(commerce_core.clock, "os", types.SimpleNamespace(
        urandom=lambda n: next(counter).to_bytes(n, "big")))
    monkeypatch.setattr(commerce_core.clock, "time", types.SimpleNamespace(
        time_ns=lambda: 1_800_000_000_000_000_000))
    suffixes = itertools.count(1)
    monkeypatch.setattr(commerce_core.testing.sandbox, "secrets", types.SimpleNamespace(
        token_hex=lambda n: f"{next(suffixes):0{2 * n}x}"))


def _run(urls: tuple[str, str], *, listened: bool) -> Platform:
    """A checkout's life on the stores at ``urls``: orders confirmed, declined, short of
    stock, shipped, refunded; a reservation expired; with or without a listener on the
    engines (which makes every statement go SQLAlchemy's own way)."""
    clock = ManualClock()
    orders = SqlAlchemyOrderStore.from_url(urls[0])
    inventory = SqlAlchemyInventoryStore.from_url(urls[1])
    if listened:
        for engine in (orders.engine, inventory.engine):
            event.listen(engine, "before_cursor_execute", _statements)
    platform = Platform.from_adapters(
        order_store=orders, inventory_store=inventory, payment_gateway=SandboxPaymentGateway(),
        clock=clock, retry=RetryPolicy.immediate(), store_retry=RetryPolicy.immediate())
    seed(platform)
    platform.inventory.upsert_product("Kanne.XL", name="Kännchen „groß“ 🍵",
                                      price=Money(300_000_000_001, "EUR"))
    platform.inventory.adjust_stock("Kanne.XL", "AMS", delta=2, reason="initial stock")
    first = order(("MUG", 2), ("Kanne.XL", 1))
    confirmed = platform.checkout.place_order(first, idempotency_key="k-1")
    for token, key in (("tok_declined", "k-2"), ("tok_visa", "k-3")):
        lines = ("MUG", 1) if key == "k-2" else ("POT", 99)
        with pytest.raises(CommerceError):
            platform.checkout.place_order(order(lines, token=token), idempotency_key=key)
    assert platform.checkout.place_order(first, idempotency_key="k-1") == confirmed  # a replay
    platform.checkout.ship(confirmed.id, carrier="DHL", tracking_number="00340434")
    platform.checkout.refund(confirmed.id, amount=Money(500, "EUR"), reason="a dent")
    clock.advance(timedelta(seconds=1))
    platform.inventory.reserve("res-lapsing", reference="manual", ttl=timedelta(minutes=1),
                               lines=[LineRequest("TEA", 4)])
    clock.advance(timedelta(minutes=2))
    platform.inventory.expire_reservations()
    platform.checkout.recover()
    return platform


def _tables(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, as the driver gives it, in a fixed order."""
    engine = sa.create_engine(url)
    rows = {}
    with engine.connect() as connection:
        for name in sa.inspect(connection).get_table_names():
            if name == "alembic_version":
                continue
            # the names are the inspector's, of this test's own database
            result = connection.exec_driver_sql(f"SELECT * FROM {name}")  # noqa: S608
            rows[name] = sorted((tuple(r) for r in result), key=repr)
    engine.dispose()
    return rows


@pytest.mark.parametrize("backend", SQL_BACKENDS)
def test_prepared_statements_write_and_read_what_sqlalchemy_does(
    backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fast_urls = _urls(backend, tmp_path / "fast")
    slow_urls = _urls(backend, tmp_path / "slow")
    _deterministic_ids(monkeypatch)
    fast = _run(fast_urls, listened=False)
    _deterministic_ids(monkeypatch)
    _SEEN.clear()
    slow = _run(slow_urls, listened=True)
    # the listened run went SQLAlchemy's way for every statement: the listener saw the
    # checkout's inserts
    assert any(s.startswith("INSERT INTO orders") for s in _SEEN)
    for fast_url, slow_url in zip(fast_urls, slow_urls, strict=True):
        assert _tables(fast_url) == _tables(slow_url)
    # and each reads what the other wrote, as the other reads it
    for a, b in ((fast, slow), (slow, fast)):
        listed = a.orders.list(limit=10).items
        assert len(listed) == 3
        assert listed == b.orders.list(limit=10).items
        for each in listed:
            assert a.orders.get(each.id) == b.orders.get(each.id) == each
            assert a.orders.payment(each) == b.orders.payment(each)
        for sku in ("MUG", "Kanne.XL", "TEA", "POT"):
            assert a.inventory.stock(sku) == b.inventory.stock(sku)
            assert a.inventory.get_product(sku) == b.inventory.get_product(sku)
    fast.close()
    slow.close()


@pytest.mark.parametrize("backend", SQL_BACKENDS)
def test_a_taken_key_on_the_fast_path_is_a_conflict_and_writes_nothing(
    backend: str, tmp_path: Path
) -> None:
    urls = _urls(backend, tmp_path)
    with Platform.from_urls(orders=urls[0], inventory=urls[1], payments="sandbox://",
                            retry=RetryPolicy.immediate()) as platform:
        seed(platform)
        store: Any = platform.inventory_store
        reserved = platform.inventory.reserve("res-1", reference="r", ttl=timedelta(minutes=5),
                                              lines=[LineRequest("MUG", 1)])
        with store.unit_of_work() as uow, pytest.raises(Conflict):
            uow.reservations.add(reserved)  # the id is taken
        # the unit of work rolled back; the store goes on
        assert platform.inventory.stock("MUG").reserved == 1
        assert platform.inventory.get_reservation("res-1") == reserved


@pytest.mark.parametrize("server", ["postgresql", "mariadb"])
def test_a_connection_lost_under_a_prepared_statement_is_transient_and_renewed(
    server: str, tmp_path: Path
) -> None:
    require(server)
    _, url = server_urls(server, tmp_path)
    store = SqlAlchemyInventoryStore(create_store_engine(url))
    with Platform.from_adapters(order_store=SqlAlchemyOrderStore.from_url(
            f"sqlite:///{tmp_path}/orders.db"), inventory_store=store,
            payment_gateway=SandboxPaymentGateway(), retry=RetryPolicy.immediate()) as platform:
        seed(platform)
        with UnitOfWork(store.engine) as uow:
            kill_own_connection(server, uow, url)
            with pytest.raises(TransientStoreError):  # before any commit: may run again
                uow.execute(_PRODUCTS, {"skus": ["MUG"]})
        # the dead connection left the pool: the next unit of work runs on a live one
        assert platform.inventory.get_products(["MUG", "TEA"]).keys() == {"MUG", "TEA"}


def test_a_statement_of_many_shapes_keeps_a_bounded_number_of_plans(tmp_path: Path) -> None:
    """A prepared query with an IN list is planned per length; lengths without end (a
    hostile caller) stop being planned, and still answer right."""
    with Platform.from_urls(orders=f"sqlite:///{tmp_path}/o.db",
                            inventory=f"sqlite:///{tmp_path}/i.db",
                            payments="sandbox://") as platform:
        seed(platform)
        for n in range(1, 150):
            skus = ["MUG", "TEA"] + [f"NOPE-{i}" for i in range(n)]
            assert set(platform.inventory.get_products(skus)) == {"MUG", "TEA"}
        found = _prepared._PREPARED[id(_PRODUCTS)]
        engine: Any = platform.inventory_store
        assert len(found.plans[engine.engine.dialect]) == 64


def test_an_engine_with_statement_listeners_runs_every_statement_through_them(
    tmp_path: Path,
) -> None:
    with Platform.from_urls(orders=f"sqlite:///{tmp_path}/o.db",
                            inventory=f"sqlite:///{tmp_path}/i.db",
                            payments="sandbox://", retry=RetryPolicy.immediate()) as platform:
        seed(platform)
        stores: list[Any] = [platform.order_store, platform.inventory_store]
        assert not any(_prepared.uses_listeners(s.engine) for s in stores)
        for store in stores:
            event.listen(store.engine, "before_cursor_execute", _statements)
        _SEEN.clear()
        platform.checkout.place_order(order(("MUG", 1)), idempotency_key="seen")
        expected = ("INSERT INTO idempotency_keys", "INSERT INTO orders", "INSERT INTO payments",
                    "UPDATE stock_levels", "INSERT INTO reservations", "UPDATE reservations",
                    "UPDATE orders", "UPDATE payments", "INSERT INTO outbox")
        for start in expected:
            assert any(s.startswith(start) for s in _SEEN), start


def _store(tmp_path: Path, **options: Any) -> SqlAlchemyInventoryStore:
    return SqlAlchemyInventoryStore(create_store_engine(f"sqlite:///{tmp_path}/i.db", **options))


def test_what_sqlalchemy_logs_or_translates_goes_its_usual_way(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The statement log (``echo``, or the logger at INFO), listeners added after a unit of
    work was made, and options that change the SQL all see every statement."""
    store = _store(tmp_path)
    assert not _prepared.uses_listeners(store.engine)
    with caplog.at_level("INFO", logger="sqlalchemy.engine.Engine"):
        assert _prepared.uses_listeners(store.engine)
        with store.unit_of_work() as uow:
            uow.execute(_PRODUCTS, {"skus": ["MUG"]})
    assert any("FROM products" in r.getMessage() for r in caplog.records)
    echoing = _store(tmp_path / "echo", echo=True)
    assert _prepared.uses_listeners(echoing.engine)
    translated = store.engine.execution_options(schema_translate_map={None: "main"})
    assert _prepared.uses_listeners(translated)
    uow = store.unit_of_work()  # made before the listener, entered after it
    event.listen(store.engine, "before_cursor_execute", _statements)
    _SEEN.clear()
    with uow:
        uow.execute(_PRODUCTS, {"skus": ["MUG"]})
    assert any("FROM products" in s for s in _SEEN)
    event.remove(store.engine, "before_cursor_execute", _statements)
    for each in (store, echoing):
        each.close()


@pytest.mark.parametrize("fast", [True, False])
def test_bad_rows_fail_as_on_sqlalchemys_own_path(tmp_path: Path, fast: bool) -> None:
    """Rows of an executemany that name different columns, and a number the driver cannot
    take, raise what SQLAlchemy's own path raises, and write nothing."""
    store = _store(tmp_path)
    if not fast:
        event.listen(store.engine, "before_cursor_execute", _statements)
    insert = inserting(stock_levels)
    row = {"sku": "MUG", "warehouse": "BER", "on_hand": 1, "reserved": 0, "version": 1}
    with store.unit_of_work() as uow, pytest.raises(sa.exc.StatementError) as caught:
        uow.execute(insert, [row, {k: v for k, v in row.items() if k != "reserved"}])
    assert isinstance(caught.value.orig, sa.exc.InvalidRequestError)
    with store.unit_of_work() as uow, pytest.raises(OverflowError):
        uow.execute(insert, {**row, "on_hand": 2**64})
    with store.unit_of_work() as uow:
        assert uow.stock.levels(["MUG"]) == []
    store.close()


def test_plans_made_by_many_threads_at_once_answer_right(tmp_path: Path) -> None:
    """The first uses of a prepared statement, in many threads at once, each with list
    lengths of their own."""
    with Platform.from_urls(orders=f"sqlite:///{tmp_path}/o.db",
                            inventory=f"sqlite:///{tmp_path}/i.db",
                            payments="sandbox://") as platform:
        seed(platform)
        failures: list[BaseException] = []
        start = threading.Barrier(8)

        def reader(n: int) -> None:
            start.wait()
            try:
                for extra in range(n, n + 20):
                    skus = ["MUG", "POT"] + [f"NO-{i}" for i in range(extra)]
                    assert set(platform.inventory.get_products(skus)) == {"MUG", "POT"}
            except BaseException as exc:  # noqa: BLE001 - reported below
                failures.append(exc)

        threads = [threading.Thread(target=reader, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert failures == []

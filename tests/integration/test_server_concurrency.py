"""Many processes buying a few hot SKUs at once on PostgreSQL and MariaDB: no oversell, no
deadlock that escapes, the ledger equal to ``on_hand``, every invariant after recovery.

These need the servers: in CI a missing one fails the test, elsewhere it is skipped with the
command that starts it.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from datetime import timedelta
from multiprocessing import get_context
from pathlib import Path

import pytest
import sqlalchemy as sa

from commerce_core import (
    CommerceError,
    InsufficientStock,
    InvalidInput,
    Money,
    OrderStatus,
    PaymentDeclined,
    Platform,
    StoreError,
    TransientStoreError,
)
from commerce_core.testing import (
    InMemoryOrderStore,
    SandboxPaymentGateway,
    check_invariants,
)
from commerce_core_sqlalchemy import SqlAlchemyInventoryStore
from commerce_core_sqlalchemy._base import UnitOfWork, create_store_engine
from commerce_core_sqlalchemy.inventory import stock_levels
from tests.conftest import order, require, server_urls
from tests.helpers import kill_own_connection

PROCESSES = 8
ORDERS_PER_PROCESS = 200
#: A few hot SKUs with far less stock than the buyers want, in two warehouses.
HOT = {"MUG": (60, 40), "POT": (25, 0), "TEA": (150, 100)}


def _buyer(urls: tuple[str, str, str], n: int, count: int) -> dict[str, int]:
    """One buyer process: ``count`` orders of one or two hot SKUs; every tenth with a card
    that is declined; every fifth confirmed order cancelled again (stock goes back)."""
    rng = random.Random(n)
    outcomes: Counter[str] = Counter()
    with Platform.from_urls(orders=urls[0], inventory=urls[1], payments=urls[2]) as platform:
        for i in range(count):
            skus = rng.sample(sorted(HOT), rng.choice((1, 2)))
            token = "tok_declined" if i % 10 == 9 else "tok_visa"
            command = order(*[(sku, rng.randint(1, 3)) for sku in skus], token=token,
                            customer=f"buyer-{n}")
            try:
                placed = platform.checkout.place_order(command, idempotency_key=f"k-{i}")
            except InsufficientStock:
                outcomes["short"] += 1
            except PaymentDeclined:
                outcomes["declined"] += 1
            except CommerceError as exc:  # counted, and the test fails on it
                outcomes[f"error: {type(exc).__name__}: {exc}"] += 1
            else:
                outcomes["confirmed"] += 1
                if i % 5 == 0:
                    platform.checkout.cancel(placed.id)
                    outcomes["cancelled"] += 1
    return dict(outcomes)


@pytest.mark.parametrize("server", ["postgresql", "mariadb"])
def test_processes_buying_hot_skus_never_oversell(server: str, tmp_path: Path) -> None:
    require(server)
    orders_url, inventory_url = server_urls(server, tmp_path)
    payments_url = f"sandbox:///{tmp_path}/sandbox.db"
    with Platform.from_urls(orders=orders_url, inventory=inventory_url,
                            payments=payments_url) as platform:
        platform.inventory.upsert_warehouse("BER", name="Berlin")
        platform.inventory.upsert_warehouse("AMS", name="Amsterdam")
        for sku, per_warehouse in HOT.items():
            platform.inventory.upsert_product(sku, name=sku.title(), price=Money(500, "EUR"))
            for warehouse, units in zip(("BER", "AMS"), per_warehouse, strict=True):
                if units:
                    platform.inventory.adjust_stock(sku, warehouse, delta=units, reason="seed")

    with ProcessPoolExecutor(PROCESSES, mp_context=get_context("spawn")) as pool:
        futures = [pool.submit(_buyer, (orders_url, inventory_url, payments_url), n,
                               ORDERS_PER_PROCESS) for n in range(PROCESSES)]
        outcomes: Counter[str] = Counter()
        for future in futures:
            outcomes.update(future.result(timeout=600))

    assert [k for k in outcomes if k.startswith("error")] == []
    assert outcomes["confirmed"] + outcomes["short"] + outcomes["declined"] \
        == PROCESSES * ORDERS_PER_PROCESS
    assert outcomes["short"] > 0, "the hot SKUs never ran out: no contention was tested"
    assert outcomes["confirmed"] > 0 and outcomes["cancelled"] > 0

    gateway = SandboxPaymentGateway(tmp_path / "sandbox.db")
    with Platform.from_urls(orders=orders_url, inventory=inventory_url,
                            payments=payments_url) as platform:
        report = platform.checkout.recover(grace=timedelta(0))
        assert report.unfinished == ()
        confirmed = list(platform.orders.scan(status=OrderStatus.CONFIRMED))
        assert len(confirmed) == outcomes["confirmed"] - outcomes["cancelled"]
        for sku, per_warehouse in HOT.items():
            stock = platform.inventory.stock(sku)
            sold = sum(line.quantity for o in confirmed for line in o.lines if line.sku == sku)
            assert stock.on_hand == sum(per_warehouse)  # nothing shipped
            assert stock.reserved == sold <= stock.on_hand  # held exactly for confirmed orders
        check_invariants(platform.order_store, platform.inventory_store, gateway)


@pytest.mark.parametrize("server", ["postgresql", "mariadb"])
def test_a_real_deadlock_is_a_transient_store_error(server: str, tmp_path: Path) -> None:
    """Two transactions lock the same two rows in opposite orders: the database kills one,
    and the adapter reports it as `TransientStoreError`, the error the services retry."""
    require(server)
    _, inventory_url = server_urls(server, tmp_path)
    store = SqlAlchemyInventoryStore.from_url(inventory_url)
    platform = Platform.from_adapters(order_store=InMemoryOrderStore(), inventory_store=store,
                                      payment_gateway=SandboxPaymentGateway())
    platform.inventory.upsert_warehouse("BER", name="Berlin")
    for sku in ("A", "B"):
        platform.inventory.upsert_product(sku, name=sku, price=Money(1, "EUR"))
        platform.inventory.adjust_stock(sku, "BER", delta=1, reason="seed")
    engine = create_store_engine(inventory_url)
    both_locked_one = threading.Barrier(2, timeout=30)
    errors: list[BaseException] = []

    def lock_in_order(first: str, second: str) -> None:
        try:
            with UnitOfWork(engine) as uow:
                for n, sku in enumerate((first, second)):
                    uow.execute(sa.select(stock_levels).where(stock_levels.c.sku == sku)
                                .with_for_update())
                    if n == 0:
                        both_locked_one.wait()
                uow.commit()
        except BaseException as exc:  # noqa: BLE001 - asserted on below
            errors.append(exc)

    threads = [threading.Thread(target=lock_in_order, args=pair)
               for pair in (("A", "B"), ("B", "A"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    engine.dispose()
    platform.close()
    assert len(errors) == 1, errors  # one was chosen as the victim, the other went on
    assert isinstance(errors[0], TransientStoreError), repr(errors[0])


@pytest.mark.parametrize("server", ["postgresql", "mariadb"])
def test_pool_settings_come_from_the_url_and_an_exhausted_pool_is_transient(
    server: str, tmp_path: Path
) -> None:
    require(server)
    _, inventory_url = server_urls(server, tmp_path)
    engine = create_store_engine(f"{inventory_url}?pool_size=1&max_overflow=0&pool_timeout=0.2")
    assert "pool_size" not in str(engine.url)  # not handed to the driver
    with UnitOfWork(engine), pytest.raises(TransientStoreError, match="busy"), \
            UnitOfWork(engine):  # the first holds the only connection
        pass
    with UnitOfWork(engine) as uow:  # free again
        assert uow.execute(sa.text("SELECT 1")).scalar() == 1
    engine.dispose()


@pytest.mark.parametrize("server", ["postgresql", "mariadb"])
def test_a_lost_connection_is_retried_before_the_commit_and_not_at_it(
    server: str, tmp_path: Path
) -> None:
    """Lost before the commit, nothing was written and the transaction may run again; lost
    during the commit, it may have been written, so it must not run again blindly."""
    require(server)
    _, url = server_urls(server, tmp_path)
    engine = create_store_engine(url)
    with UnitOfWork(engine) as uow:
        kill_own_connection(server, uow, url)
        with pytest.raises(TransientStoreError):
            uow.execute(sa.text("SELECT 1"))
    with UnitOfWork(engine) as uow:
        kill_own_connection(server, uow, url)
        with pytest.raises(StoreError, match="outcome is unknown") as caught:
            uow.commit()
    assert not isinstance(caught.value, TransientStoreError)
    with UnitOfWork(engine) as uow:  # the pool recovers
        assert uow.execute(sa.text("SELECT 1")).scalar() == 1
    engine.dispose()


def test_no_free_connection_at_the_server_is_waited_out(tmp_path: Path) -> None:
    """PostgreSQL refuses a connection (the role's connection limit, as "too many clients"
    would): the unit of work has done nothing yet, so the service retries it and succeeds
    once a connection is free again."""
    require("postgresql")
    _, url = server_urls("postgresql", tmp_path)
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    role = f"cc_limited_{tmp_path.name[-8:].replace('-', '_').lower()}"
    with admin.connect() as connection:
        connection.exec_driver_sql(f"DROP ROLE IF EXISTS {role}")
        connection.exec_driver_sql(f"CREATE ROLE {role} LOGIN CONNECTION LIMIT 1")
        connection.exec_driver_sql(f"GRANT ALL ON SCHEMA public TO {role}")
        connection.exec_driver_sql(f"GRANT ALL ON ALL TABLES IN SCHEMA public TO {role}")
    SqlAlchemyInventoryStore.from_url(url).close()  # the schema, made by the owner
    with admin.connect() as connection:
        connection.exec_driver_sql(f"GRANT ALL ON ALL TABLES IN SCHEMA public TO {role}")
        connection.exec_driver_sql(f"GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO {role}")
    limited = url.replace("postgres@", f"{role}@")
    store = SqlAlchemyInventoryStore(create_store_engine(limited), create_schema=False)
    platform = Platform.from_adapters(order_store=InMemoryOrderStore(), inventory_store=store,
                                      payment_gateway=SandboxPaymentGateway())
    holder = sa.create_engine(limited, poolclass=sa.pool.NullPool)  # close() really closes
    busy = holder.connect()  # the role's only connection
    with pytest.raises(TransientStoreError), UnitOfWork(store.engine):
        pass
    threading.Timer(0.3, busy.close).start()  # freed while the service is retrying
    warehouse, created = platform.inventory.upsert_warehouse("BER", name="Berlin")
    assert created and warehouse.code == "BER"
    platform.close()
    holder.dispose()
    with admin.connect() as connection:
        connection.execute(sa.text(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = :role"),
            {"role": role})
        connection.exec_driver_sql(f"DROP OWNED BY {role}")
        connection.exec_driver_sql(f"DROP ROLE {role}")
    admin.dispose()


@pytest.mark.parametrize("server", ["postgresql", "mariadb"])
def test_pooled_connections_killed_by_a_restart_are_renewed_without_a_ping(
    server: str, tmp_path: Path
) -> None:
    """No ping before use: the idle connections a restart killed fail the next unit of work
    before it wrote anything, the write runs again on a fresh pool, and nothing is lost."""
    require(server)
    _, url = server_urls(server, tmp_path)
    store = SqlAlchemyInventoryStore(create_store_engine(url))
    assert store.engine.pool._pre_ping is False
    platform = Platform.from_adapters(order_store=InMemoryOrderStore(), inventory_store=store,
                                      payment_gateway=SandboxPaymentGateway())
    platform.inventory.upsert_warehouse("BER", name="Berlin")
    with UnitOfWork(store.engine) as first, UnitOfWork(store.engine) as second:
        pids = [int(uow.execute(sa.text("SELECT pg_backend_pid()" if server == "postgresql"
                                        else "SELECT CONNECTION_ID()")).scalar_one())
                for uow in (first, second)]
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:  # both now idle in the pool: a restart kills them
        for pid in pids:
            connection.execute(sa.text(f"SELECT pg_terminate_backend({pid})"
                                       if server == "postgresql" else f"KILL {pid}"))
    admin.dispose()
    warehouse, created = platform.inventory.upsert_warehouse("AMS", name="Amsterdam")
    assert created and warehouse.code == "AMS"
    assert [w.code for w in platform.inventory.list_warehouses()] == ["AMS", "BER"]
    with pytest.raises(InvalidInput, match="invalid database URL"):
        create_store_engine(f"{url}?pool_pre_ping=maybe")
    pinged = create_store_engine(f"{url}?pool_pre_ping=true")
    assert pinged.pool._pre_ping is True
    pinged.dispose()
    platform.close()

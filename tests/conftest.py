"""Fixtures: platforms on every store backend, with a manual clock and no retry waits."""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import settings

from commerce_core import Address, Money, OrderItem, PlaceOrder, Platform, RetryPolicy
from commerce_core.inventory import InventoryStore
from commerce_core.orders import OrderStore
from commerce_core.testing import (
    InMemoryInventoryStore,
    InMemoryOrderStore,
    ManualClock,
    SandboxPaymentGateway,
)
from commerce_core_sqlalchemy import SqlAlchemyInventoryStore, SqlAlchemyOrderStore

# CI runs a fixed set of examples so a red build is reproducible; developers' runs keep
# exploring new ones (and Hypothesis' example database replays whatever failed before).
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

#: Server databases join the backends named in COMMERCE_TEST_SERVERS, by default both in CI
#: (where a missing server fails the run) and none on a developer machine (set
#: COMMERCE_TEST_SERVERS=postgresql,mariadb to include them). Each test gets two fresh
#: databases on the server, dropped when the session ends.
SERVER_URLS = {
    "postgresql": "postgresql+psycopg://postgres@127.0.0.1:5432/{db}",
    "mariadb": "mysql+pymysql://root@127.0.0.1:3306/{db}",
}
_SERVERS = os.environ.get("COMMERCE_TEST_SERVERS",
                          "postgresql,mariadb" if os.environ.get("CI") else "")
BACKENDS = ["memory", "sqlite"] + [name for name in _SERVERS.split(",") if name]


def _admin(backend: str, statements: list[str]) -> None:
    engine = sa.create_engine(SERVER_URLS[backend].format(
        db="postgres" if backend == "postgresql" else ""), isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        for statement in statements:
            connection.exec_driver_sql(statement)
    engine.dispose()


def _fresh_server_database(backend: str, name: str) -> str:
    _admin(backend, [f"DROP DATABASE IF EXISTS {name}", f"CREATE DATABASE {name}"])
    return SERVER_URLS[backend].format(db=name)


def make_stores(backend: str, folder: Path) -> tuple[OrderStore, InventoryStore]:
    """A fresh, empty pair of stores: two separate databases."""
    if backend == "memory":
        return InMemoryOrderStore(), InMemoryInventoryStore()
    if backend == "sqlite":
        return (SqlAlchemyOrderStore.from_url(f"sqlite:///{folder}/orders.db"),
                SqlAlchemyInventoryStore.from_url(f"sqlite:///{folder}/inventory.db"))
    if backend in SERVER_URLS:
        orders_url, inventory_url = server_urls(backend, folder)
        return (SqlAlchemyOrderStore.from_url(orders_url),
                SqlAlchemyInventoryStore.from_url(inventory_url))
    raise ValueError(backend)


def server_urls(backend: str, folder: Path) -> tuple[str, str]:
    """The URLs of two empty databases on a server (the order and the inventory database),
    made once per test folder, so a restarted "process" finds the same databases."""
    tag = hashlib.sha256(str(folder).encode()).hexdigest()[:12]
    urls = []
    for store in ("orders", "inventory"):
        name = f"cc_{tag}_{store}"
        if name not in _CREATED:
            _CREATED[name] = (backend, _fresh_server_database(backend, name))
        urls.append(_CREATED[name][1])
    return urls[0], urls[1]


_CREATED: dict[str, tuple[str, str]] = {}


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Drop the databases the session created (their engines are disposed by then)."""
    for name, (backend, _) in _CREATED.items():
        if backend == "postgresql":
            _admin(backend, [f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"])
        else:
            _admin(backend, [f"DROP DATABASE IF EXISTS {name}"])
    _CREATED.clear()


@pytest.fixture(autouse=True)
def _sqlalchemy_not_left_instrumented() -> Iterator[None]:
    """A test that traced an app in this process (OpenTelemetry's SQLAlchemy
    instrumentation: listeners on every engine made after it) takes the instrumentation
    down again, so that later tests' engines run as an untraced host's do (their prepared
    statements on the driver's cursor)."""
    yield
    module = sys.modules.get("opentelemetry.instrumentation.sqlalchemy")
    if module is not None:
        instrumentor = module.SQLAlchemyInstrumentor()
        if instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.uninstrument()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def gateway() -> SandboxPaymentGateway:
    return SandboxPaymentGateway()


@pytest.fixture
def platform(
    backend: str, tmp_path: Path, clock: ManualClock, gateway: SandboxPaymentGateway
) -> Iterator[Platform]:
    order_store, inventory_store = make_stores(backend, tmp_path)
    with Platform.from_adapters(
        order_store=order_store, inventory_store=inventory_store, payment_gateway=gateway,
        clock=clock, retry=RetryPolicy.immediate(),
    ) as platform:
        yield platform


def seed(platform: Platform, stock: dict[str, int] | None = None) -> None:
    """Two warehouses and three products; ``stock`` is units per SKU in Berlin."""
    platform.inventory.upsert_warehouse("BER", name="Berlin")
    platform.inventory.upsert_warehouse("AMS", name="Amsterdam")
    platform.inventory.upsert_product("MUG", name="Mug", price=Money(1250, "EUR"))
    platform.inventory.upsert_product("POT", name="Teapot", price=Money(3900, "EUR"))
    platform.inventory.upsert_product("TEA", name="Green tea", price=Money(800, "EUR"))
    for sku, units in (stock or {"MUG": 10, "POT": 3, "TEA": 50}).items():
        platform.inventory.adjust_stock(sku, "BER", delta=units, reason="initial stock")


ADDRESS = Address("Ada Lovelace", "Main St 1", "Berlin", "10115", "DE")


def order(*lines: tuple[str, int], token: str = "tok_visa", customer: str = "alice") -> PlaceOrder:
    return PlaceOrder(customer_id=customer, lines=[OrderItem(s, q) for s, q in lines],
                      payment_token=token, shipping_address=ADDRESS)


def require_server(name: str, port: int, how_to_start: str) -> None:
    """Tests that need a local server: in CI a missing server fails the test; on a developer
    machine the test is skipped, saying how to start the server."""
    import socket  # noqa: PLC0415 - only the server tests need it

    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except OSError:
        message = f"{name} is not running on 127.0.0.1:{port}; start it with: {how_to_start}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


REDIS_START = ('redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" '
               "--appendonly no")
SERVERS = {  # name: (port, how to start it)
    "postgresql": (5432, "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main "
                         "start"),
    "mariadb": (3306, "start-stop-daemon --start --oknodo --background "
                      "--exec /usr/sbin/mariadbd"),
    "redis": (6379, REDIS_START),
    "rabbitmq": (5672, "rabbitmq-server -detached"),
}


def require(server: str) -> None:
    """`require_server` by name: postgresql, mariadb, redis or rabbitmq."""
    port, how = SERVERS[server]
    require_server(server, port, how)

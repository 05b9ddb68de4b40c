"""What every measurement shares: databases, the catalogue, the workload and the statistics."""

from __future__ import annotations

import json
import os
import random
import shutil
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attrs
import psycopg

ROOT = Path(__file__).resolve().parent
VAR = ROOT / "var"
PG_ADMIN = os.environ.get("BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")

#: The catalogue every measurement runs on: SKUs in two warehouses, plenty of stock.
SKUS = 1000
WAREHOUSES = ("BER", "AMS")
STOCK = 10_000_000
#: Orders already in the order store before a measurement starts.
SEEDED_ORDERS = 5000
CUSTOMERS = 1000
ADDRESS: dict[str, Any] = {"name": "Ada Buyer", "line1": "Hauptstraße 1", "line2": None,
                           "city": "Berlin", "postal_code": "10115", "country": "DE"}


def sku(index: int) -> str:
    return f"SKU-{index:06d}"


@attrs.frozen
class Spec:
    """One checkout of the workload: who buys what, under which idempotency key."""

    customer: str
    lines: tuple[tuple[str, int], ...]
    key: str


def workload(count: int, *, seed: int, hot: str | None = None, start: int = 0) -> list[Spec]:
    """``count`` checkouts of two lines each (or of ``hot`` alone), the same for every
    system measured with the same seed."""
    rng = random.Random(seed)
    specs = []
    for n in range(start, start + count):
        if hot is not None:
            lines: tuple[tuple[str, int], ...] = ((hot, 1),)
        else:
            first, second = rng.sample(range(SKUS), 2)
            lines = ((sku(first), rng.randint(1, 2)), (sku(second), 1))
        specs.append(Spec(f"cust-{rng.randrange(CUSTOMERS):05d}", lines, f"bench-{seed}-{n}"))
    return specs


# -- databases -------------------------------------------------------------------------------

def pg_url(database: str, *, driver: str = "postgresql+psycopg") -> str:
    base = PG_ADMIN.rsplit("/", 1)[0].split("://", 1)[1]
    return f"{driver}://{base}/{database}"


def fresh_databases(backend: str, tag: str) -> tuple[str, str]:
    """Empty order and inventory databases (SQLAlchemy URLs) for one measurement."""
    if backend == "sqlite":
        folder = VAR / tag
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        return f"sqlite:///{folder / 'orders.db'}", f"sqlite:///{folder / 'inventory.db'}"
    names = (f"bench_{tag}_orders", f"bench_{tag}_inventory")
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        for name in names:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            admin.execute(f"CREATE DATABASE {name}")
    return pg_url(names[0]), pg_url(names[1])


def driver_url(url: str) -> str:
    """The URL the raw driver takes: a file path for sqlite3, a libpq URL for psycopg."""
    if url.startswith("sqlite:///"):
        return url.removeprefix("sqlite:///")
    return url.replace("postgresql+psycopg://", "postgresql://")


@contextmanager
def raw(url: str) -> Iterator[Any]:
    """A raw DB-API connection (sqlite3 or psycopg) in autocommit, for seeding."""
    if url.startswith("sqlite"):
        import sqlite3
        lite = sqlite3.connect(driver_url(url), isolation_level=None)
        try:
            yield lite
        finally:
            lite.close()
    else:
        with psycopg.connect(driver_url(url), autocommit=True) as connection:
            yield connection


def placeholder(url: str) -> str:
    return "?" if url.startswith("sqlite") else "%s"


def create_schema(orders_url: str, inventory_url: str) -> None:
    """The library's own tables (its migrations), so every system writes the same rows."""
    from commerce_core_sqlalchemy import SqlAlchemyInventoryStore, SqlAlchemyOrderStore

    SqlAlchemyOrderStore.from_url(orders_url).close()
    SqlAlchemyInventoryStore.from_url(inventory_url).close()


def seed(orders_url: str, inventory_url: str, *, skus: int = SKUS,
         orders: int = SEEDED_ORDERS, stock: int = STOCK) -> None:
    """The catalogue (with its stock and the stock's ledger) and ``orders`` confirmed orders,
    written in bulk: the same starting point for every system measured."""
    create_schema(orders_url, inventory_url)
    now = datetime.now(UTC).replace(tzinfo=None)
    p = placeholder(inventory_url)
    with raw(inventory_url) as db:
        cur = db.cursor()
        cur.execute("BEGIN")
        cur.executemany(f"INSERT INTO warehouses (code, name) VALUES ({p}, {p})",
                        [(code, code) for code in WAREHOUSES])
        cur.executemany(
            f"INSERT INTO products (sku, name, price_amount, currency, active) "
            f"VALUES ({p}, {p}, {p}, {p}, {p})",
            [(sku(i), f"Product {i}", 500 + i % 5000, "EUR", True) for i in range(skus)])
        levels = [(sku(i), wh) for i in range(skus) for wh in WAREHOUSES]
        cur.executemany(
            f"INSERT INTO stock_levels (sku, warehouse, on_hand, reserved, version) "
            f"VALUES ({p}, {p}, {p}, 0, 1)", [(s, wh, stock) for s, wh in levels])
        cur.executemany(
            f"INSERT INTO stock_movements (sku, warehouse, delta, reason, reference, at) "
            f"VALUES ({p}, {p}, {p}, 'seed', NULL, {p})", [(s, wh, stock, now) for s, wh in levels])
        cur.execute("COMMIT")
    if orders:
        seed_orders(orders_url, orders, prefix="seed")


#: The columns `order_rows` fills, table by table.
ORDER_COLUMNS = ("id", "customer_id", "status", "saga_step", "currency", "shipping_address",
                 "payment_token", "payment_id", "history", "created_at", "updated_at", "version")
LINE_COLUMNS = ("order_id", "position", "sku", "name", "quantity", "unit_amount", "currency")
PAYMENT_COLUMNS = ("id", "order_id", "currency", "amount", "status", "authorization_id",
                   "authorized", "captured", "refunded", "refund_count", "events", "created_at",
                   "updated_at", "version")


def order_rows(
    numbers: range, *, prefix: str, rng: random.Random, at: Callable[[int], datetime],
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Delivered orders ``numbers`` (two lines and a captured payment each, placed ``at(n)``,
    naive UTC), as rows of the library's tables: orders, order lines, payments."""
    address = json.dumps(ADDRESS, separators=(",", ":"), sort_keys=True)
    orders, lines, payments = [], [], []
    for n in numbers:
        when = at(n)
        stamp = when.isoformat() + "+00:00"
        order_id, payment_id = f"ord_{prefix}{n:012d}", f"pay_{prefix}{n:012d}"
        orders.append((order_id, f"cust-{rng.randrange(CUSTOMERS):05d}", "delivered", "done",
                       "EUR", address, "tok_visa", payment_id,
                       json.dumps([["pending", stamp], ["delivered", stamp]]), when, when, 4))
        lines.append((order_id, 0, sku(n % SKUS), "Mug", 1, 1250, "EUR"))
        lines.append((order_id, 1, sku((n + 7) % SKUS), "Tea", 2, 800, "EUR"))
        payments.append((payment_id, order_id, "EUR", 2850, "captured", f"auth_{n}", 2850,
                         2850, 0, 0, "[]", when, when, 3))
    return orders, lines, payments


def seed_orders(orders_url: str, count: int, *, prefix: str, batch: int = 20_000) -> None:
    """``count`` delivered orders, in bulk (executemany, in batches)."""
    p = placeholder(orders_url)
    now = datetime.now(UTC).replace(tzinfo=None)
    rng = random.Random(7)
    with raw(orders_url) as db:
        cur = db.cursor()
        for start in range(0, count, batch):
            tables = order_rows(range(start, min(count, start + batch)), prefix=prefix,
                                rng=rng, at=lambda _: now)
            cur.execute("BEGIN")
            for table, columns, rows in zip(("orders", "order_lines", "payments"),
                                            (ORDER_COLUMNS, LINE_COLUMNS, PAYMENT_COLUMNS),
                                            tables, strict=True):
                cur.executemany(f"INSERT INTO {table} ({', '.join(columns)}) "
                                f"VALUES ({', '.join([p] * len(columns))})", rows)
            cur.execute("COMMIT")


# -- statistics ------------------------------------------------------------------------------

def percentile(sorted_values: Sequence[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


def summary(latencies: Sequence[float], elapsed: float, *, errors: int = 0,
            **extra: Any) -> dict[str, Any]:
    """orders/s over the wall-clock ``elapsed``, and latency percentiles in milliseconds."""
    ordered = sorted(latencies)
    return {
        "orders": len(ordered), "seconds": round(elapsed, 3),
        "orders_per_s": round(len(ordered) / elapsed, 1) if elapsed else 0.0,
        "p50_ms": round(percentile(ordered, 0.50) * 1000, 2),
        "p99_ms": round(percentile(ordered, 0.99) * 1000, 2),
        "mean_ms": round(statistics.fmean(ordered) * 1000, 2) if ordered else float("nan"),
        "errors": errors, **extra,
    }


def timed(run: Callable[[Spec], Any], specs: Sequence[Spec]) -> tuple[list[float], float]:
    """Run every spec one after another; the latencies and the wall-clock time."""
    latencies = []
    started = time.perf_counter()
    for spec in specs:
        begin = time.perf_counter()
        run(spec)
        latencies.append(time.perf_counter() - begin)
    return latencies, time.perf_counter() - started

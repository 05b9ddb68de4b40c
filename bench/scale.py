"""Scale: reads with a million orders in the order store, availability with 100,000 SKUs, and
the bulk import of 100,000 products, all on PostgreSQL through the public API.

The million orders are written once by COPY and kept (``bench_scale_<n>_orders``): a later
run finds them and starts at once. The inventory database is made afresh by the import."""

from __future__ import annotations

import asyncio
import random
import re
import sys
import time
from datetime import datetime, timedelta
from typing import Any

import httpx
import psycopg
from tqdm import tqdm

from bench.common import (
    CUSTOMERS,
    LINE_COLUMNS,
    ORDER_COLUMNS,
    PAYMENT_COLUMNS,
    PG_ADMIN,
    fresh_databases,
    order_rows,
    percentile,
    pg_url,
)
from commerce_core import Money, Platform
from commerce_core.inventory import Product
from commerce_core_admin import AdminConfig, create_admin
from commerce_core_gateway import Principal
from commerce_core_sqlalchemy import SqlAlchemyOrderStore


def _ms(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {"p50_ms": round(percentile(ordered, 0.5) * 1000, 3),
            "p99_ms": round(percentile(ordered, 0.99) * 1000, 3),
            "samples": len(ordered)}


def order_store(count: int) -> str:
    """The URL of an order database holding ``count`` orders, seeding it if it does not."""
    name = f"bench_scale_{count}_orders"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                               [name]).fetchone()
        if not exists:
            admin.execute(f"CREATE DATABASE {name}")
    url = pg_url(name)
    SqlAlchemyOrderStore.from_url(url).close()  # the schema, migrated to the newest
    with psycopg.connect(url.replace("+psycopg", ""), autocommit=True) as db:
        have = db.execute("SELECT count(*) FROM orders").fetchone()
        if have and have[0] == count:
            return url
        db.execute("TRUNCATE orders, order_lines, payments, idempotency_keys, outbox")
    _copy_orders(url, count)
    return url


def _copy_orders(url: str, count: int) -> None:
    """``count`` delivered orders by COPY, spread over a year and over the customers (ids
    ``ord_000000000000`` on, so that a read can pick any)."""
    rng = random.Random(17)
    start = datetime(2025, 1, 1)

    def placed(n: int) -> datetime:
        return start + timedelta(seconds=n * 31_536_000 // count)

    with psycopg.connect(url.replace("+psycopg", "")) as db, tqdm(
            total=count, unit=" orders", desc="seeding orders", file=sys.stderr,
            mininterval=1) as bar:
        cur = db.cursor()
        for begin in range(0, count, 100_000):
            numbers = range(begin, min(count, begin + 100_000))
            tables = order_rows(numbers, prefix="", rng=rng, at=placed)
            for table, columns, rows in zip(("orders", "order_lines", "payments"),
                                            (ORDER_COLUMNS, LINE_COLUMNS, PAYMENT_COLUMNS),
                                            tables, strict=True):
                with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
            db.commit()
            bar.update(len(numbers))
        db.commit()
    # vacuumed as a database that has run for a while is (the visibility map set, the
    # statistics taken): a table just filled by COPY reads slower, and its first runs vary
    with psycopg.connect(url.replace("+psycopg", ""), autocommit=True) as db:
        db.execute("VACUUM ANALYZE")


def reads(orders_url: str, count: int, samples: int) -> dict[str, Any]:
    """Order read by id, and list pages (keyset), through `OrderService`, in process."""
    platform = Platform.from_urls(orders=orders_url, inventory="memory://",
                                  payments="sandbox://")
    rng = random.Random(23)
    try:
        for _ in range(50):  # warm the pool and the statement cache
            platform.orders.get(f"ord_{rng.randrange(count):012d}")
        read = []
        for _ in range(samples):
            order_id = f"ord_{rng.randrange(count):012d}"
            begin = time.perf_counter()
            order = platform.orders.get(order_id)
            read.append(time.perf_counter() - begin)
            assert order.id == order_id  # noqa: S101 - a wrong answer fast is no result
        customer_pages: list[float] = []
        for _ in range(samples // 3):  # a customer's orders: the first page, then two more
            cursor = None
            customer = f"cust-{rng.randrange(CUSTOMERS):05d}"
            for _ in range(3):
                begin = time.perf_counter()
                page = platform.orders.list(customer_id=customer, limit=20, cursor=cursor)
                customer_pages.append(time.perf_counter() - begin)
                cursor = page.next_cursor
        admin_pages: list[float] = []
        cursor = None
        for _ in range(samples // 2):  # an admin walking every order, newest first, by the
            # API's default page of 20
            begin = time.perf_counter()
            page = platform.orders.list(limit=20, cursor=cursor)
            admin_pages.append(time.perf_counter() - begin)
            cursor = page.next_cursor
    finally:
        platform.close()
    return {"orders_in_store": count, "order_read": _ms(read),
            "order_list_customer_page": _ms(customer_pages),
            "order_list_all_page": _ms(admin_pages),
            "order_list": _ms(customer_pages + admin_pages)}


_NEXT = re.compile(r'rel="next" href="[^"]*cursor=([^"&]+)')


def console(orders_url: str, count: int, samples: int) -> dict[str, Any]:
    """The admin console's orders list page and dashboard among ``count`` orders: whole
    requests (session check, the queries, the HTML) to the console's ASGI app, in process,
    by a signed-in admin. The list pages are the first page, pages further on (by the
    page's own "Older orders" link), a customer's orders and one status's."""
    platform = Platform.from_urls(orders=orders_url, inventory="memory://",
                                  payments="sandbox://")
    key = "bench-admin-key-for-the-console"
    app = create_admin(platform, AdminConfig(session_secret="b" * 40,
                                             api_keys={key: Principal.admin()}))
    rng = random.Random(31)

    async def run() -> tuple[list[float], list[float]]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            form = await client.get("/sign-in")
            token = re.search(r'name="csrf" value="([^"]+)"', form.text)
            assert token is not None  # noqa: S101 - no console, no figure
            signed = await client.post("/sign-in", data={"csrf": token.group(1), "key": key})
            assert signed.status_code == 303  # noqa: S101

            async def timed(path: str, **params: str) -> tuple[float, str]:
                begin = time.perf_counter()
                answer = await client.get(path, params=params or None)
                elapsed = time.perf_counter() - begin
                assert answer.status_code == 200, answer.text[:300]  # noqa: S101
                return elapsed, answer.text

            for _ in range(20):  # warm the pool, the statement cache and the templates
                await timed("/orders")
            lists: list[float] = []
            cursor: str | None = None
            for n in range(samples):
                kind = n % 4
                if kind == 0:  # the first page
                    elapsed, _ = await timed("/orders")
                elif kind == 1:  # the next page along the walk, by the page's link
                    elapsed, text = await timed("/orders", **({"cursor": cursor}
                                                              if cursor else {}))
                    found = _NEXT.search(text)
                    cursor = found.group(1) if found else None
                elif kind == 2:  # a customer's orders
                    elapsed, _ = await timed(
                        "/orders", customer=f"cust-{rng.randrange(CUSTOMERS):05d}")
                else:  # one status
                    elapsed, _ = await timed("/orders", status="delivered")
                lists.append(elapsed)
            dashboards = [(await timed("/"))[0] for _ in range(max(20, samples // 10))]
            return lists, dashboards

    try:
        lists, dashboards = asyncio.run(run())
    finally:
        platform.close()
    return {"orders_in_store": count, "admin_orders_page": _ms(lists),
            "admin_dashboard": _ms(dashboards)}


def catalogue(products: int, samples: int) -> dict[str, Any]:
    """Bulk import ``products`` products (with a progress bar), then give each stock in two
    warehouses and measure the availability query for a basket of SKUs."""
    orders_url, inventory_url = fresh_databases("postgresql", f"catalogue_{products}")
    platform = Platform.from_urls(orders=orders_url, inventory=inventory_url,
                                  payments="sandbox://")
    try:
        items = [Product(f"CAT-{n:07d}", f"Catalogue item {n}", Money(100 + n % 9000, "EUR"))
                 for n in range(products)]
        with tqdm(total=products, unit=" products", desc="importing", file=sys.stderr,
                  mininterval=0.5) as bar:
            def advance(count: int) -> None:
                bar.update(count)

            began = time.perf_counter()
            report = platform.inventory.import_products(items, batch_size=1000,
                                                        on_progress=advance)
            imported = time.perf_counter() - began
        platform.inventory.upsert_warehouse("BER", name="Berlin")
        platform.inventory.upsert_warehouse("AMS", name="Amsterdam")
        with psycopg.connect(inventory_url.replace("+psycopg", "")) as db:
            with db.cursor().copy("COPY stock_levels (sku, warehouse, on_hand, reserved, "
                                  "version) FROM STDIN") as copy:
                for n in range(products):
                    copy.write_row((f"CAT-{n:07d}", "BER", 10 + n % 50, 0, 1))
                    if n % 2 == 0:
                        copy.write_row((f"CAT-{n:07d}", "AMS", 5, 0, 1))
            db.execute("ANALYZE")
        rng = random.Random(29)
        times = []
        for n in range(samples + 50):
            basket = [f"CAT-{rng.randrange(products):07d}" for _ in range(20)]
            begin = time.perf_counter()
            found = platform.inventory.availability(basket)
            if n >= 50:
                times.append(time.perf_counter() - begin)
            assert all(found[s] > 0 for s in basket)  # noqa: S101 - a wrong answer is no result
    finally:
        platform.close()
    return {
        "products": products,
        "import_seconds": round(imported, 2),
        "import_products_per_s": round(products / imported),
        "import_created": report.created,
        "availability_20_skus": _ms(times),
    }

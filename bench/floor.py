"""The floor: the same logical checkout written by hand on the raw driver (sqlite3, psycopg).

The durable steps are the ones the saga needs, in the library's own tables:

1. the pending order, its lines and its idempotency key, committed in the order database;
2. the stock reserved (rows locked, ``reserved`` raised, the reservation and its lines
   written), committed in the inventory database;
3. the order confirmed and its payment record written, committed in the order database.

No ORM, no retries, no events, no checks beyond the stock check: as fast as Python goes on
that database for this work. One connection per database, held for the whole run.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from datetime import UTC, datetime
from typing import Any

import psycopg

from bench.common import ADDRESS, Spec, driver_url


class OutOfStock(Exception):
    pass


class Floor:
    def __init__(self, orders_url: str, inventory_url: str) -> None:
        self.sqlite = orders_url.startswith("sqlite")
        self.orders: Any
        self.inventory: Any
        if self.sqlite:
            self.orders = self._sqlite(driver_url(orders_url))
            self.inventory = self._sqlite(driver_url(inventory_url))
            self.p = "?"
        else:
            self.orders = psycopg.connect(driver_url(orders_url), autocommit=True)
            self.inventory = psycopg.connect(driver_url(inventory_url), autocommit=True)
            self.p = "%s"
        self.address = json.dumps(ADDRESS, separators=(",", ":"), sort_keys=True)

    @staticmethod
    def _sqlite(path: str) -> sqlite3.Connection:
        # the library's settings: WAL, synchronous=NORMAL, a busy timeout
        connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        connection.execute("PRAGMA busy_timeout=30000")
        connection.execute("PRAGMA foreign_keys=ON")
        return connection

    def close(self) -> None:
        self.orders.close()
        self.inventory.close()

    def _begin(self, connection: Any, *, write_lock: bool = False) -> Any:
        if self.sqlite:
            connection.execute("BEGIN IMMEDIATE" if write_lock else "BEGIN")
        else:
            connection.execute("BEGIN")
        return connection.cursor()

    def checkout(self, spec: Spec) -> str:
        p = self.p
        skus = [s for s, _ in spec.lines]
        marks = ", ".join([p] * len(skus))
        prices = {row[0]: row[1:] for row in self.inventory.execute(
            f"SELECT sku, name, price_amount, currency FROM products "
            f"WHERE sku IN ({marks}) AND active", skus).fetchall()}
        now = datetime.now(UTC).replace(tzinfo=None)
        order_id, payment_id = f"ord_{uuid.uuid4().hex}", f"pay_{uuid.uuid4().hex}"
        total = sum(prices[s][1] * q for s, q in spec.lines)
        pending = json.dumps([["pending", now.isoformat() + "+00:00"]])

        # 1. the pending order with its idempotency key
        cur = self._begin(self.orders)
        try:
            cur.execute(
                f"INSERT INTO idempotency_keys (scope, key, fingerprint, order_id, created_at) "
                f"VALUES ({p}, {p}, {p}, {p}, {p})",
                (spec.customer, spec.key, "-", order_id, now))
            cur.execute(
                "INSERT INTO orders (id, customer_id, status, saga_step, currency, "
                "shipping_address, payment_token, history, created_at, updated_at, version) "
                f"VALUES ({p}, {p}, 'pending', 'started', 'EUR', {p}, 'tok_visa', {p}, {p}, "
                f"{p}, 1)", (order_id, spec.customer, self.address, pending, now, now))
            cur.executemany(
                "INSERT INTO order_lines (order_id, position, sku, name, quantity, unit_amount, "
                f"currency) VALUES ({p}, {p}, {p}, {p}, {p}, {p}, {p})",
                [(order_id, n, s, prices[s][0], q, prices[s][1], prices[s][2])
                 for n, (s, q) in enumerate(spec.lines)])
        except BaseException:
            self.orders.execute("ROLLBACK")
            raise
        self.orders.execute("COMMIT")

        # 2. the stock reserved
        cur = self._begin(self.inventory, write_lock=True)
        try:
            lock = "" if self.sqlite else " FOR UPDATE"
            levels = cur.execute(
                f"SELECT sku, warehouse, on_hand - reserved FROM stock_levels "
                f"WHERE sku IN ({marks}) ORDER BY sku, warehouse{lock}", skus).fetchall()
            parts = []
            for s, quantity in spec.lines:
                wanted = quantity
                for level_sku, warehouse, available in levels:
                    if level_sku == s and wanted and available > 0:
                        take = min(wanted, available)
                        parts.append((s, warehouse, take))
                        wanted -= take
                if wanted:
                    raise OutOfStock(s)
            cur.executemany(
                f"UPDATE stock_levels SET reserved = reserved + {p}, version = version + 1 "
                f"WHERE sku = {p} AND warehouse = {p}", [(q, s, w) for s, w, q in parts])
            reservation = f"res_{order_id}"
            cur.execute(
                "INSERT INTO reservations (id, reference, status, created_at, expires_at, "
                f"version) VALUES ({p}, {p}, 'held', {p}, NULL, 1)", (reservation, order_id, now))
            cur.executemany(
                "INSERT INTO reservation_lines (reservation_id, position, sku, warehouse, "
                f"quantity) VALUES ({p}, {p}, {p}, {p}, {p})",
                [(reservation, n, s, w, q) for n, (s, w, q) in enumerate(parts)])
        except BaseException:
            self.inventory.execute("ROLLBACK")
            raise
        self.inventory.execute("COMMIT")

        # 3. the order confirmed, with its payment record
        confirmed = json.dumps([["pending", now.isoformat() + "+00:00"],
                                ["confirmed", now.isoformat() + "+00:00"]])
        cur = self._begin(self.orders)
        try:
            cur.execute(
                f"UPDATE orders SET status = 'confirmed', saga_step = 'done', payment_id = {p}, "
                f"history = {p}, updated_at = {p}, version = version + 1 WHERE id = {p}",
                (payment_id, confirmed, now, order_id))
            cur.execute(
                "INSERT INTO payments (id, order_id, currency, amount, status, authorization_id, "
                "authorized, captured, refunded, refund_count, events, created_at, updated_at, "
                f"version) VALUES ({p}, {p}, 'EUR', {p}, 'authorized', {p}, {p}, 0, 0, 0, '[]', "
                f"{p}, {p}, 1)", (payment_id, order_id, total, f"auth_{order_id}", total, now, now))
        except BaseException:
            self.orders.execute("ROLLBACK")
            raise
        self.orders.execute("COMMIT")
        return order_id

"""Contention: concurrent buyers of one SKU over HTTP, and what the stores say afterwards."""

from __future__ import annotations

from typing import Any

import psycopg

from bench import http
from bench.common import driver_url
from commerce_core import Money, Platform

HOT = "SKU-000001"


def _units(orders_url: str, inventory_url: str, sku: str) -> dict[str, int]:
    """What the databases hold for ``sku``: confirmed units (order store), on hand and
    reserved (inventory store)."""
    with psycopg.connect(driver_url(orders_url)) as db:
        row = db.execute(
            "SELECT coalesce(sum(l.quantity), 0) FROM order_lines l JOIN orders o "
            "ON o.id = l.order_id WHERE l.sku = %s AND o.status = 'confirmed'", [sku]).fetchone()
        confirmed = int(row[0]) if row else 0
    with psycopg.connect(driver_url(inventory_url)) as db:
        row = db.execute("SELECT coalesce(sum(on_hand), 0), coalesce(sum(reserved), 0) "
                         "FROM stock_levels WHERE sku = %s", [sku]).fetchone()
        on_hand, reserved = (int(row[0]), int(row[1])) if row else (0, 0)
    return {"confirmed_units": confirmed, "on_hand": on_hand, "reserved": reserved}


def hot_sku(url: str, keys: list[str], urls: tuple[str, str], *, buyers: int, orders: int,
            seed: int, stock: int | None = None) -> dict[str, Any]:
    """``buyers`` clients all buying one unit of one SKU, ``orders`` in all. With ``stock``,
    a new SKU with only that many units (it sells out); otherwise the catalogue's hot SKU,
    with plenty. Oversold units are counted from the databases, not from the answers."""
    sku = HOT
    if stock is not None:
        sku = f"HOT-{seed}"
        with Platform.from_urls(orders=urls[0], inventory=urls[1],
                                payments="sandbox://") as admin:
            admin.inventory.upsert_product(sku, name="The last few", price=Money(999, "EUR"))
            admin.inventory.adjust_stock(sku, "BER", delta=stock, reason="bench")
    figures = http.load(url, keys, concurrency=buyers, orders=orders, hot=sku, seed=seed)
    after = _units(*urls, sku)
    figures.update(after)
    figures["sku"] = sku
    # sold more than there is, or confirmed orders the stock does not hold for
    figures["oversold_units"] = (max(0, after["confirmed_units"] - after["on_hand"])
                                 + max(0, after["confirmed_units"] - after["reserved"]))
    figures["held_equals_confirmed"] = after["reserved"] == after["confirmed_units"]
    if stock is not None:
        figures["stock"] = stock
    return figures

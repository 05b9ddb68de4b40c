"""Hammer a running commerce-server with concurrent buyers of a few SKUs, then check over the
HTTP API that nothing was oversold and that the stock held equals the confirmed orders.

    COMMERCE_API_KEYS='adm=admin,c1=customer:c1,c2=customer:c2' \\
        python examples/hammer.py --url http://127.0.0.1:8000 --buyers 64 --orders 2000 \\
        --skus MUG-01,POT-01,CUP-01

The keys are read from COMMERCE_API_KEYS, the server's own variable: the first admin key
reads the stock and the orders, the customer keys buy in turn. The last line printed is one
JSON object; the exit status is 1 if any unit was oversold, the stock held differs from what
the confirmed orders hold, or any request ended in 5xx or a transport error. Run it against a
server that nobody else uses at the time (it assumes the SKUs are not being shipped or
restocked while it runs).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import threading
import time
import uuid
from collections import Counter
from typing import Any

import httpx

ADDRESS = {"name": "Load Test", "line1": "Main St 1", "city": "Berlin", "postal_code": "10115",
           "country": "DE"}


def _keys(spec: str) -> tuple[str, list[str]]:
    admin, customers = None, []
    for entry in filter(None, (part.strip() for part in spec.split(","))):
        key, _, role = entry.partition("=")
        if role == "admin" and admin is None:
            admin = key
        elif role.startswith("customer:"):
            customers.append(key)
    if admin is None or not customers:
        raise SystemExit("COMMERCE_API_KEYS needs an admin key and at least one customer key")
    return admin, customers


def _stock(http: httpx.Client, admin: str, sku: str) -> dict[str, Any]:
    response = http.get(f"/v1/inventory/{sku}", headers={"Authorization": f"Bearer {admin}"})
    response.raise_for_status()
    return response.json()  # type: ignore[no-any-return]


def _confirmed_units(http: httpx.Client, admin: str, skus: list[str]) -> tuple[int, Counter[str]]:
    orders, units, cursor = 0, Counter[str](), None
    while True:
        params = {"status": "confirmed", "limit": "100", **({"cursor": cursor} if cursor else {})}
        page = http.get("/v1/orders", params=params,
                        headers={"Authorization": f"Bearer {admin}"}).json()
        for order in page["items"]:
            orders += 1
            for line in order["lines"]:
                if line["sku"] in skus:
                    units[line["sku"]] += line["quantity"]
        cursor = page["next_cursor"]
        if cursor is None:
            return orders, units


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--buyers", type=int, default=16)
    parser.add_argument("--orders", type=int, default=500, help="orders in all")
    parser.add_argument("--skus", default="MUG-01,POT-01,CUP-01")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    admin, customers = _keys(os.environ.get("COMMERCE_API_KEYS", ""))
    skus = args.skus.split(",")
    run = uuid.uuid4().hex[:8]
    with httpx.Client(base_url=args.url, timeout=60) as http:
        before_orders, before_units = _confirmed_units(http, admin, skus)

    statuses: Counter[str] = Counter()
    latencies: list[float] = []
    lock = threading.Lock()
    remaining = iter(range(args.orders))

    def buyer(n: int) -> None:
        rng = random.Random(args.seed * 1000 + n)
        key = customers[n % len(customers)]
        with httpx.Client(base_url=args.url, timeout=60) as http:
            while True:
                with lock:
                    i = next(remaining, None)
                if i is None:
                    return
                lines = [{"sku": sku, "quantity": rng.randint(1, 2)}
                         for sku in rng.sample(skus, rng.randint(1, min(2, len(skus))))]
                body = {"lines": lines, "payment": {"token": "tok_visa"},
                        "shipping_address": ADDRESS}
                started = time.perf_counter()
                try:
                    response = http.post("/v1/orders", json=body, headers={
                        "Authorization": f"Bearer {key}", "Idempotency-Key": f"{run}-{i}"})
                    outcome = str(response.status_code)
                except httpx.TransportError as exc:
                    outcome = type(exc).__name__
                with lock:
                    latencies.append(time.perf_counter() - started)
                    statuses[outcome] += 1

    started = time.perf_counter()
    threads = [threading.Thread(target=buyer, args=(n,)) for n in range(args.buyers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started

    with httpx.Client(base_url=args.url, timeout=60) as http:
        orders, units = _confirmed_units(http, admin, skus)
        stock = {sku: _stock(http, admin, sku) for sku in skus}
    oversold = sum(max(0, stock[sku]["reserved"] - stock[sku]["on_hand"]) for sku in skus)
    mismatched = [sku for sku in skus if stock[sku]["reserved"] != units[sku]]
    errors = sum(n for status, n in statuses.items() if not status.isdigit()
                 or status.startswith("5"))
    ordered = sorted(latencies)
    summary = {
        "requests": sum(statuses.values()), "statuses": dict(sorted(statuses.items())),
        "orders_per_second": round(len(latencies) / elapsed, 1),
        "p50_ms": round(statistics.median(ordered) * 1000, 1),
        "p99_ms": round(ordered[int(len(ordered) * 0.99) - 1] * 1000, 1),
        "confirmed_now": orders, "confirmed_by_this_run": orders - before_orders,
        "units_held": {sku: stock[sku]["reserved"] for sku in skus},
        "units_in_confirmed_orders": {sku: units[sku] for sku in skus},
        "units_confirmed_by_this_run": {sku: units[sku] - before_units[sku] for sku in skus},
        "oversold_units": oversold, "held_vs_confirmed_mismatches": mismatched,
        "errors": errors,
    }
    print(json.dumps(summary))
    return 1 if oversold or mismatched or errors else 0


if __name__ == "__main__":
    sys.exit(main())

"""``make bench`` (``python -m bench [--quick]``): every measurement of the suite in one run,
written to ``bench/results/latest.json`` and ``latest.md``, with the plot of throughput and
p99 against concurrency.

Nothing here is a test and nothing asserts a time: the figures that matter are ratios between
two things measured in the same run, on the same machine, at the same moment."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform as host
import sqlite3
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from bench import gateway, http, inprocess, replay, scale
from bench.common import PG_ADMIN, ROOT, fresh_databases, seed
from bench.contention import hot_sku
from bench.report import TARGETS, plot, table

RESULTS = ROOT / "results"
DOCS_PLOT = ROOT.parent / "docs" / "img" / "performance.png"


def _say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def machine() -> dict[str, Any]:
    memory = 0
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = int(line.split()[1]) // 1024
    model = ""
    with contextlib.suppress(OSError):
        model = next((line.split(":", 1)[1].strip() for line in
                      Path("/proc/cpuinfo").read_text().splitlines()
                      if line.startswith("model name")), "")
    with psycopg.connect(PG_ADMIN) as db:
        row = db.execute("SHOW server_version").fetchone()
        pg = row[0] if row else "?"
    return {"cpus": os.cpu_count(), "cpu_model": model or host.processor(),
            "memory_mib": memory, "os": f"{host.system()} {host.release()}",
            "python": host.python_version(), "postgresql": pg,
            "sqlite": sqlite3.sqlite_version}


def in_process(results: dict[str, Any], quick: bool) -> None:
    """1 and 2: the floor and the library on the same catalogue and seeded orders."""
    n = {"sqlite": 300, "postgresql": 200} if quick else {"sqlite": 2000, "postgresql": 1000}
    concurrent = 200 if quick else 800
    results["floor"], results["inprocess"] = {}, {}
    for backend in ("sqlite", "postgresql"):
        for kind in ("floor", "library"):
            _say(f"{kind} on {backend}, one client, {n[backend]} orders")
            urls = fresh_databases(backend, f"{kind}_{backend}")
            seed(*urls)
            figures = inprocess.single(kind, *urls, n[backend])
            if kind == "floor":
                results["floor"][backend] = figures
            else:
                results["inprocess"][backend] = {"single": figures}
        _say(f"the library's statements on the raw driver, {backend}, {n[backend]} orders")
        results.setdefault("replay", {})[backend] = replay.replayed(backend, n[backend])
        _say(f"library on {backend}, one client, {n[backend]} priced orders")
        urls = fresh_databases(backend, f"priced_{backend}")
        seed(*urls)
        results["inprocess"][backend]["priced"] = inprocess.single(
            "library", *urls, n[backend], priced=True)
        for clients in (4,) if quick else (4, 8):
            _say(f"library on {backend}, {clients} threads")
            urls = fresh_databases(backend, f"threads_{backend}")
            seed(*urls)
            results["inprocess"][backend][f"threads_{clients}"] = inprocess.threads(
                *urls, concurrent, clients)
        for clients in (2,) if quick else (2, 4):
            _say(f"library on {backend}, {clients} processes")
            urls = fresh_databases(backend, f"processes_{backend}")
            seed(*urls)
            results["inprocess"][backend][f"processes_{clients}"] = inprocess.processes(
                *urls, concurrent, clients)


def over_http(results: dict[str, Any], quick: bool) -> None:
    """3 and 4: the reference server on PostgreSQL, then one hot SKU on two workers."""
    keys_env, keys = http.api_keys()
    results["http"], results["contention"] = {}, {}
    results["server_threads"] = http.THREADS
    seed_no = 100  # every load run its own idempotency keys
    for workers in (2,) if quick else (1, 2):
        urls = fresh_databases("postgresql", f"http_{workers}")
        seed(*urls)
        with http.server(*urls, workers=workers, keys=keys_env) as url:
            runs: dict[str, Any] = {}
            for concurrency in (1, 16) if quick else (1, 16, 64):
                orders = {1: 100 if quick else 300, 16: 300 if quick else 1000,
                          64: 1500}[concurrency]
                _say(f"HTTP, {workers} worker(s), concurrency {concurrency}, {orders} orders")
                http.load(url, keys, concurrency=concurrency, orders=min(100, orders),
                          seed=seed_no)  # warm-up: connections, pools, caches
                runs[f"c{concurrency}"] = http.load(url, keys, concurrency=concurrency,
                                                    orders=orders, seed=seed_no + 1)
                seed_no += 2
            results["http"][f"workers_{workers}"] = runs
            if workers != 2:
                continue
            for buyers in (16,) if quick else (16, 64):
                _say(f"hot SKU, {buyers} buyers")
                results["contention"][f"c{buyers}"] = hot_sku(
                    url, keys, urls, buyers=buyers, orders=300 if quick else 1000,
                    seed=seed_no)
                seed_no += 1
            _say("hot SKU selling out: 64 buyers for the last 50 units")
            results["contention"]["sellout"] = hot_sku(
                url, keys, urls, buyers=64, orders=400, seed=seed_no, stock=50)


def gateway_cost(results: dict[str, Any], quick: bool) -> None:
    """5: the gateway's own work per place-order request."""
    _say("gateway cost")
    urls = fresh_databases("postgresql", "gateway")
    seed(*urls)
    shop = inprocess.open_platform(*urls)
    try:
        results["gateway"] = gateway.measure(shop, 200 if quick else 600)
    finally:
        shop.close()


def at_scale(results: dict[str, Any], quick: bool) -> None:
    """6: reads among a million orders, the catalogue import and availability."""
    orders_in_store = 100_000 if quick else 1_000_000
    _say(f"scale: {orders_in_store} orders in the order store")
    store = scale.order_store(orders_in_store)
    results["scale"] = scale.reads(store, orders_in_store, 600 if quick else 3000)
    _say("scale: the admin console's orders list and dashboard")
    results["scale"]["console"] = scale.console(store, orders_in_store, 200 if quick else 1000)
    products = 10_000 if quick else 100_000
    _say(f"scale: importing {products} products, then availability")
    results["scale"]["catalogue"] = scale.catalogue(products, 300 if quick else 2000)


def run(quick: bool) -> dict[str, Any]:
    results: dict[str, Any] = {"quick": quick,
                               "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
                               "machine": machine()}
    began = time.perf_counter()
    for section in (in_process, over_http, gateway_cost, at_scale):
        section(results, quick)
    results["seconds"] = round(time.perf_counter() - began, 1)
    results.update(ratios(results))
    results["targets"] = {
        key: {"value": results[key], "target": f"{op} {limit}",
              "met": results[key] >= limit if op == ">=" else results[key] <= limit}
        for key, (op, limit) in TARGETS.items()}
    return results


def ratios(r: dict[str, Any]) -> dict[str, Any]:
    """The stable keys of latest.json."""
    lib, floor = r["inprocess"], r["floor"]
    w2 = r["http"]["workers_2"]
    return {
        "inprocess_vs_floor_sqlite": round(lib["sqlite"]["single"]["orders_per_s"]
                                           / floor["sqlite"]["orders_per_s"], 3),
        "inprocess_vs_floor_postgres": round(lib["postgresql"]["single"]["orders_per_s"]
                                             / floor["postgresql"]["orders_per_s"], 3),
        # the library's own statements played back on the raw driver (bench/replay.py):
        # what the database alone allows the library, against the floor
        "replay_vs_floor_sqlite": round(r["replay"]["sqlite"]["orders_per_s"]
                                        / floor["sqlite"]["orders_per_s"], 3),
        "replay_vs_floor_postgres": round(r["replay"]["postgresql"]["orders_per_s"]
                                          / floor["postgresql"]["orders_per_s"], 3),
        "inprocess_vs_replay_sqlite": round(lib["sqlite"]["single"]["orders_per_s"]
                                            / r["replay"]["sqlite"]["orders_per_s"], 3),
        "inprocess_vs_replay_postgres": round(lib["postgresql"]["single"]["orders_per_s"]
                                              / r["replay"]["postgresql"]["orders_per_s"], 3),
        # CPU of this process (client and library) per order, one client; and what a
        # checkout asks of the stores, per order (SQLite's run: the same on PostgreSQL)
        "cpu_ms_per_order_sqlite": lib["sqlite"]["single"]["cpu_ms_per_order"],
        "cpu_ms_per_order_postgres": lib["postgresql"]["single"]["cpu_ms_per_order"],
        "commits_per_order": lib["sqlite"]["single"]["commits_per_order"],
        "statements_per_order": lib["sqlite"]["single"]["statements_per_order"],
        # the same for a priced order: shipping, tax and a voucher
        "priced_vs_floor_sqlite": round(lib["sqlite"]["priced"]["orders_per_s"]
                                        / floor["sqlite"]["orders_per_s"], 3),
        "priced_vs_floor_postgres": round(lib["postgresql"]["priced"]["orders_per_s"]
                                          / floor["postgresql"]["orders_per_s"], 3),
        "cpu_ms_per_priced_order_sqlite": lib["sqlite"]["priced"]["cpu_ms_per_order"],
        "cpu_ms_per_priced_order_postgres": lib["postgresql"]["priced"]["cpu_ms_per_order"],
        "commits_per_priced_order": lib["sqlite"]["priced"]["commits_per_order"],
        "statements_per_priced_order": lib["sqlite"]["priced"]["statements_per_order"],
        "http_c16_vs_inprocess": round(w2["c16"]["orders_per_s"]
                                       / lib["postgresql"]["single"]["orders_per_s"], 3),
        "http_c16_p99_ms": w2["c16"]["p99_ms"],
        "http_c16_errors": w2["c16"]["errors"],
        "hot_sku_vs_uncontended": round(r["contention"]["c16"]["orders_per_s"]
                                        / w2["c16"]["orders_per_s"], 3),
        "hot_sku_oversold": sum(c["oversold_units"] for c in r["contention"].values()),
        "gateway_overhead_fraction": r["gateway"]["gateway_overhead_fraction"],
        # the quick run has 100,000 orders in the store, not 1,000,000: see scale.orders_in_store
        "order_read_p99_ms_1m": r["scale"]["order_read"]["p99_ms"],
        "order_list_p99_ms_1m": r["scale"]["order_list"]["p99_ms"],
        # a whole page of the admin console (25 orders, as HTML) among the same orders
        "admin_orders_page_p99_ms_1m": r["scale"]["console"]["admin_orders_page"]["p99_ms"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="the reduced run (under a minute)")
    args = parser.parse_args()
    results = run(args.quick)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "latest.json").write_text(json.dumps(results, indent=2) + "\n")
    text = table(results)
    (RESULTS / "latest.md").write_text(text)
    plot(results, RESULTS / "latest.png")
    if not args.quick:  # what docs/performance.md shows
        (RESULTS / "full.json").write_text(json.dumps(results, indent=2) + "\n")
        (RESULTS / "full.md").write_text(text)
        DOCS_PLOT.parent.mkdir(parents=True, exist_ok=True)
        plot(results, DOCS_PLOT)
    print(text)
    print(f"written: {RESULTS / 'latest.json'}, {RESULTS / 'latest.md'}, "
          f"{RESULTS / 'latest.png'} ({results['seconds']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

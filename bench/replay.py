"""The library's own statements on the raw driver: what the database costs of the library's
checkout, with none of the library's Python in between.

A library run is recorded (every statement with the parameters the driver got, every real
``BEGIN``, ``COMMIT`` and ``ROLLBACK``), then played back on one raw connection per database
(sqlite3, psycopg) into databases seeded the same way, so the same rows are written in the
same transactions. Its rate against the floor's bounds the library's ratio on this machine:
the library cannot be faster than its own statements, and what it is slower than them by is
its Python (the core, SQLAlchemy, the driver's parameter handling)."""

from __future__ import annotations

import sqlite3
import time
from typing import Any

import psycopg
from sqlalchemy import event

from bench.common import Spec, driver_url, fresh_databases, seed, summary, timed, workload
from bench.inprocess import WARMUP, checkout_of, open_platform
from commerce_core_sqlalchemy._base import _READING

#: one recorded step: (store, "sql", statement, parameters, executemany) or (store, kind)
Entry = tuple[Any, ...]


def record(orders_url: str, inventory_url: str, count: int) -> tuple[list[Entry], int]:
    """The steps of a warm-up and then of ``count`` orders, and where the orders start."""
    platform = open_platform(orders_url, inventory_url)
    entries: list[Entry] = []
    open_: set[int] = set()
    engines = {"orders": platform.order_store.engine,  # type: ignore[attr-defined]
               "inventory": platform.inventory_store.engine}  # type: ignore[attr-defined]

    def listen(store: str, engine: Any) -> None:
        def statement(_c: Any, _cur: Any, sql: str, params: Any, _ctx: Any, many: bool) -> None:
            entries.append((store, "sql", sql, params, many))

        def begin(conn: Any) -> None:
            # a unit of work that only reads runs in autocommit: no BEGIN is sent for it
            if conn.info.get(_READING) or conn.get_execution_options().get(
                    "isolation_level") == "AUTOCOMMIT":
                return
            open_.add(id(conn))
            entries.append((store, "begin"))

        def end(kind: str) -> Any:
            def ended(conn: Any) -> None:
                if id(conn) in open_:
                    open_.discard(id(conn))
                    entries.append((store, kind))
            return ended

        event.listen(engine, "before_cursor_execute", statement)
        event.listen(engine, "begin", begin)
        event.listen(engine, "commit", end("commit"))
        event.listen(engine, "rollback", end("rollback"))

    for store, engine in engines.items():
        listen(store, engine)
    run = checkout_of(platform)
    try:
        timed(run, workload(WARMUP, seed=99, start=10**7))
        start = len(entries)
        timed(run, workload(count, seed=1))
    finally:
        platform.close()
    return entries, start


def _connect(url: str) -> Any:
    if url.startswith("sqlite"):
        # the library's settings (as the floor's): WAL, synchronous=NORMAL, a busy timeout
        connection = sqlite3.connect(driver_url(url), isolation_level=None)
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "busy_timeout=30000",
                       "foreign_keys=ON"):
            connection.execute(f"PRAGMA {pragma}")
        return connection
    return psycopg.connect(driver_url(url), autocommit=True)


def play(orders_url: str, inventory_url: str, entries: list[Entry], start: int,
         count: int) -> dict[str, Any]:
    """Play ``entries`` back into freshly seeded databases; the figures of the part after
    ``start`` (``count`` orders)."""
    sqlite = orders_url.startswith("sqlite")
    connections = {"orders": _connect(orders_url), "inventory": _connect(inventory_url)}
    begin = "BEGIN IMMEDIATE" if sqlite else "BEGIN"
    began = cpu = 0.0
    try:
        for index, entry in enumerate(entries):
            if index == start:
                began, cpu = time.perf_counter(), time.process_time()
            connection = connections[entry[0]]
            kind = entry[1]
            if kind == "sql":
                _, _, sql, params, many = entry
                cursor = connection.cursor()
                if many:
                    cursor.executemany(sql, params)
                else:
                    cursor.execute(sql, params)
                    if cursor.description is not None:
                        cursor.fetchall()
                cursor.close()
            else:
                connection.execute(begin if kind == "begin" else kind.upper())
        elapsed = time.perf_counter() - began
        cpu = time.process_time() - cpu
    finally:
        for connection in connections.values():
            connection.close()
    figures = summary([elapsed / count] * count, elapsed, clients=1)
    figures.update(cpu_ms_per_order=round(cpu * 1000 / count, 3),
                   statements_per_order=round(
                       sum(1 for e in entries[start:] if e[1] == "sql") / count, 2),
                   commits_per_order=round(
                       sum(1 for e in entries[start:] if e[1] == "commit") / count, 2))
    return figures


def replayed(backend: str, count: int) -> dict[str, Any]:
    """Record ``count`` library orders on one pair of databases, play them back on another."""
    recorded = fresh_databases(backend, f"replay_rec_{backend}")
    seed(*recorded)
    entries, start = record(*recorded, count)
    played = fresh_databases(backend, f"replay_play_{backend}")
    seed(*played)
    figures = play(*played, entries, start, count)
    if _state(*recorded) != _state(*played):  # the playback must have done the same work
        raise RuntimeError(f"the playback on {backend} did not write what the library did")
    return figures


def _state(orders_url: str, inventory_url: str) -> tuple[Any, ...]:
    """What a checkout changes, summed: orders by status, events, stock reserved."""
    found: list[Any] = []
    for url, query in (
            (orders_url, "SELECT status, count(*) FROM orders GROUP BY status ORDER BY status"),
            (orders_url, "SELECT count(*) FROM outbox"),
            (orders_url, "SELECT count(*) FROM idempotency_keys"),
            (inventory_url, "SELECT sum(reserved), sum(version) FROM stock_levels"),
            (inventory_url, "SELECT status, count(*) FROM reservations GROUP BY status "
                            "ORDER BY status")):
        connection = _connect(url)
        try:
            found.append([tuple(row) for row in connection.execute(query).fetchall()])
        finally:
            connection.close()
    return tuple(found)


__all__ = ["Spec", "play", "record", "replayed"]

"""Helpers for adapter authors: what every store would otherwise write for itself.

- `DbApiOutbox`: the outbox (`commerce_core.events.OutboxRepository`: add, pending, the
  backlog, mark published, the relay's lease, purge) on any DB-API 2 connection (sqlite3,
  psycopg, PyMySQL, ...), written once; `outbox_schema` gives its two tables' DDL.
- `ProductBatchDefaults`, `PaymentBatchDefaults`, `StockBatchDefaults`: the ports' batch
  methods (``get_many``, ``add_many``, ``update_many``) built on the single ones, as mixins
  for a repository class that has only those.

A store keeps its own transaction: the outbox runs its statements on the cursor it is
given, inside the unit of work's transaction, so its events commit or roll back with it.
`commerce_core.testing.scaffold` generates stores that use both.
"""

# ruff: noqa: S608  (table names are checked identifiers; every value is a bound parameter)
from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from commerce_core.errors import Conflict, StoreError
from commerce_core.events import Backlog, DomainEvent
from commerce_core.inventory.model import Product, StockLevel
from commerce_core.payments.model import Payment
from commerce_core.telemetry import clean_carrier

__all__ = [
    "DbApiOutbox",
    "PaymentBatchDefaults",
    "ProductBatchDefaults",
    "StockBatchDefaults",
    "from_text",
    "is_integrity_error",
    "outbox_schema",
    "to_text",
]


def to_text(moment: datetime) -> str:
    """A datetime as fixed-width ISO 8601 text in UTC (``2026-01-02T03:04:05.123000+00:00``):
    text of this form sorts as the moments do, so it can be stored in a text column and
    compared in SQL. A naive datetime is refused (`StoreError`: the library never makes
    one)."""
    if moment.tzinfo is None:
        raise StoreError(f"a naive datetime cannot be stored: {moment!r}")
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def from_text(text: str) -> datetime:
    """`to_text`'s inverse: timezone-aware, in UTC."""
    return datetime.fromisoformat(text).astimezone(UTC)


def is_integrity_error(exc: BaseException) -> bool:
    """Whether a driver's exception is its DB-API ``IntegrityError`` (a unique or primary
    key taken, for the inserts of a store): every DB-API driver names the class so."""
    return any(kind.__name__ == "IntegrityError" for kind in type(exc).__mro__)


_SCHEMAS: dict[str, tuple[str, str]] = {
    # (the events' auto-increment position column, the text type of keys compared exactly)
    "sqlite": ("position INTEGER PRIMARY KEY AUTOINCREMENT", "TEXT"),
    "postgresql": ("position BIGSERIAL PRIMARY KEY", "TEXT"),
    # keys compared byte for byte: a MySQL-family default collation ignores case
    "mysql": ("position BIGINT AUTO_INCREMENT PRIMARY KEY",
              "VARCHAR(200) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"),
}


def outbox_schema(dialect: str = "sqlite", *, events_table: str = "outbox",
                  leases_table: str = "outbox_leases") -> list[str]:
    """The ``CREATE TABLE`` (and index) statements of `DbApiOutbox`'s tables for
    ``sqlite``, ``postgresql`` or ``mysql`` (MariaDB too), each of which may run again
    (``IF NOT EXISTS``). Times are stored as `to_text` text; events keep the order they
    were written in by ``position``."""
    for table in (events_table, leases_table):
        if not _IDENTIFIER.fullmatch(table):
            raise ValueError(f"table name {table!r}: letters, digits and _ only")
    try:
        position, key = _SCHEMAS[dialect]
    except KeyError:
        raise ValueError(f"no outbox schema for {dialect!r}: one of {sorted(_SCHEMAS)}") from None
    text = "LONGTEXT" if dialect == "mysql" else "TEXT"
    index = f"ix_{events_table}_published_at_position"
    # MySQL has no CREATE INDEX IF NOT EXISTS: its index is declared with the table, so
    # that every statement may run again (a store creates its tables at each start)
    inline = f", INDEX {index} (published_at, position)" if dialect == "mysql" else ""
    statements = [
        f"CREATE TABLE IF NOT EXISTS {events_table} ("
        f"{position}, id {key} NOT NULL UNIQUE, type {key} NOT NULL, "
        f"aggregate_type {key} NOT NULL, aggregate_id {key} NOT NULL, "
        f"sequence BIGINT NOT NULL, occurred_at VARCHAR(40) NOT NULL, payload {text} NOT NULL, "
        f"trace {text}, published_at VARCHAR(40){inline})",
        f"CREATE TABLE IF NOT EXISTS {leases_table} (relay {key} NOT NULL PRIMARY KEY, "
        f"owner {key} NOT NULL, until VARCHAR(40) NOT NULL)",
    ]
    if not inline:
        statements.append(f"CREATE INDEX IF NOT EXISTS {index} ON {events_table} "
                          "(published_at, position)")
    return statements


class _Cursor(Protocol):
    def execute(self, operation: str, parameters: Sequence[Any] = ..., /) -> Any: ...
    def executemany(self, operation: str, seq_of_parameters: Sequence[Sequence[Any]],
                    /) -> Any: ...
    def fetchall(self) -> Sequence[Sequence[Any]]: ...
    def fetchone(self) -> Sequence[Any] | None: ...


_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_COLUMNS = "id, type, aggregate_type, aggregate_id, sequence, occurred_at, payload, trace"


class DbApiOutbox:
    """An `OutboxRepository` on a DB-API 2 cursor, in the transaction of the unit of work
    that made the cursor.

    ``paramstyle`` is the driver's (``qmark`` for sqlite3, ``format`` for psycopg and
    PyMySQL). The tables are `outbox_schema`'s. A second event with a taken id, and a
    lease inserted by two relays at once, raise `Conflict` (the driver's
    ``IntegrityError``); other driver errors are the store's to map (the unit of work
    around the outbox sees them as they are).
    """

    def __init__(self, cursor: _Cursor, *, paramstyle: str = "qmark",
                 events_table: str = "outbox", leases_table: str = "outbox_leases") -> None:
        if paramstyle not in ("qmark", "format"):
            raise ValueError(f"paramstyle {paramstyle!r}: qmark or format")
        for table in (events_table, leases_table):
            if not _IDENTIFIER.fullmatch(table):
                raise ValueError(f"table name {table!r}: letters, digits and _ only")
        self._cursor = cursor
        self._mark = "?" if paramstyle == "qmark" else "%s"
        self._events = events_table
        self._leases = leases_table

    def _run(self, sql: str, params: Sequence[Any] = ()) -> Any:
        cursor = self._cursor
        try:
            cursor.execute(sql.replace("?", self._mark), tuple(params))
        except Exception as exc:
            if is_integrity_error(exc):
                raise Conflict(f"{self._events}: a key is taken ({exc})") from exc
            raise
        return cursor

    def add(self, events: Sequence[DomainEvent]) -> None:
        rows = [(e.id, e.type, e.aggregate_type, e.aggregate_id, e.sequence,
                 to_text(e.occurred_at), json.dumps(dict(e.payload), separators=(",", ":")),
                 json.dumps(clean) if (clean := clean_carrier(e.trace)) else None)
                for e in events]
        if not rows:
            return
        marks = ", ".join([self._mark] * 8)
        try:
            self._cursor.executemany(f"INSERT INTO {self._events} ({_COLUMNS}) "
                                     f"VALUES ({marks})", rows)
        except Exception as exc:
            if is_integrity_error(exc):
                raise Conflict(f"{self._events}: an event id is taken ({exc})") from exc
            raise

    def pending(self, *, limit: int) -> Sequence[DomainEvent]:
        rows = self._run(f"SELECT {_COLUMNS} FROM {self._events} WHERE published_at IS NULL "
                         f"ORDER BY position LIMIT {int(limit)}").fetchall()
        return [DomainEvent(id=r[0], type=r[1], aggregate_type=r[2], aggregate_id=r[3],
                            sequence=int(r[4]), occurred_at=from_text(r[5]),
                            payload=json.loads(r[6]), trace=_trace(r[7]))
                for r in rows]

    def backlog(self, *, most: int) -> Backlog:
        """The pending events counted up to ``most`` and the oldest one's time, from the
        ``(published_at, position)`` index: no event is read whole."""
        count = self._run(f"SELECT COUNT(*) FROM (SELECT position FROM {self._events} "
                          f"WHERE published_at IS NULL LIMIT {int(most)}) waiting").fetchone()
        first = self._run(f"SELECT occurred_at FROM {self._events} WHERE published_at IS NULL "
                          "ORDER BY position LIMIT 1").fetchone()
        return Backlog(int(count[0]) if count else 0, from_text(first[0]) if first else None)

    def mark_published(self, event_ids: Collection[str], *, at: datetime) -> None:
        ids = list(dict.fromkeys(event_ids))
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            self._run(f"UPDATE {self._events} SET published_at = ? WHERE published_at IS NULL "
                      f"AND id IN ({', '.join('?' * len(chunk))})", [to_text(at), *chunk])

    def claim(self, relay: str, *, owner: str, now: datetime, until: datetime) -> bool:
        # the update locks the row it changes; whose the lease is then is read back rather
        # than taken from the rowcount (MySQL drivers count changed rows, not matched ones)
        self._run(f"UPDATE {self._leases} SET owner = ?, until = ? WHERE relay = ? "
                  "AND (owner = ? OR until <= ?)",
                  [owner, to_text(until), relay, owner, to_text(now)])
        held = self._run(f"SELECT owner, until FROM {self._leases} WHERE relay = ?",
                         [relay]).fetchone()
        if held is not None:
            return bool(held[0] == owner and held[1] == to_text(until))
        # a relay inserting it first makes this a Conflict: the relay takes it for "not
        # mine" (its transaction is rolled back)
        self._run(f"INSERT INTO {self._leases} (relay, owner, until) VALUES (?, ?, ?)",
                  [relay, owner, to_text(until)])
        return True

    def purge(self, *, published_before: datetime, limit: int) -> int:
        found = self._run(f"SELECT position FROM {self._events} WHERE published_at IS NOT NULL "
                          f"AND published_at < ? ORDER BY position LIMIT {int(limit)}",
                          [to_text(published_before)]).fetchall()
        positions = [row[0] for row in found]
        for start in range(0, len(positions), 500):
            chunk = positions[start:start + 500]
            self._run(f"DELETE FROM {self._events} WHERE position IN "
                      f"({', '.join('?' * len(chunk))})", chunk)
        return len(positions)


def _trace(text: str | None) -> dict[str, str]:
    if not text:
        return {}
    loaded: Mapping[str, str] = json.loads(text)
    return clean_carrier(loaded)


class _ProductsByOne(Protocol):
    def get(self, sku: str) -> Product | None: ...
    def add(self, product: Product) -> None: ...


class _PaymentsByOne(Protocol):
    def get(self, payment_id: str) -> Payment | None: ...


class _StockByOne(Protocol):
    def update(self, level: StockLevel) -> StockLevel: ...


class ProductBatchDefaults:
    """``get_many`` and ``add_many`` of a `ProductRepository` from its ``get`` and ``add``:
    a mixin for a store without bulk statements. ``add_many`` checks every SKU before it
    adds any, so a taken one adds none (inside the unit of work's transaction, which the
    store serialises or locks as it does for ``add``)."""

    def get_many(self: _ProductsByOne, skus: Collection[str]) -> dict[str, Product]:
        found = {sku: self.get(sku) for sku in dict.fromkeys(skus)}
        return {sku: product for sku, product in found.items() if product is not None}

    def add_many(self: _ProductsByOne, items: Sequence[Product]) -> None:
        seen: set[str] = set()
        for product in items:
            if product.sku in seen or self.get(product.sku) is not None:
                raise Conflict(f"product {product.sku!r} exists")
            seen.add(product.sku)
        for product in items:
            self.add(product)


class PaymentBatchDefaults:
    """``get_many`` of a `PaymentRepository` from its ``get``."""

    def get_many(self: _PaymentsByOne, payment_ids: Collection[str]) -> dict[str, Payment]:
        found = {pid: self.get(pid) for pid in dict.fromkeys(payment_ids)}
        return {pid: payment for pid, payment in found.items() if payment is not None}


class StockBatchDefaults:
    """``update_many`` of a `StockRepository` from its ``update``, one level after the other
    in the order given. A `ConcurrencyConflict` on any leaves the earlier ones written in
    the transaction; the library never commits after one (the unit of work rolls back and
    the service runs it again), so all or none of them are kept."""

    def update_many(self: _StockByOne, levels: Sequence[StockLevel]) -> list[StockLevel]:
        return [self.update(level) for level in levels]

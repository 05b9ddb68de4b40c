"""In-memory order and inventory stores: real implementations of the ports, for tests and demos.

Each store serialises its units of work with a lock (the simplest correct isolation) and keeps
a unit's writes apart until ``commit()``, so rollback and optimistic versions behave as they do
on a database.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Collection, Iterator, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, Self, TypeVar

import attrs

from commerce_core.errors import ConcurrencyConflict, Conflict, VoucherNotApplicable
from commerce_core.events import Backlog, DomainEvent
from commerce_core.inventory.model import (
    Product,
    Reservation,
    ReservationStatus,
    StockLevel,
    StockMovement,
    Warehouse,
)
from commerce_core.kit import PaymentBatchDefaults, ProductBatchDefaults, StockBatchDefaults
from commerce_core.orders.model import (
    IdempotencyRecord,
    Order,
    OrderStatus,
    ReturnStatus,
    SagaStep,
)
from commerce_core.orders.ports import SummaryRow
from commerce_core.payments.model import Payment
from commerce_core.webhooks.memory import InMemoryWebhookStore

__all__ = ["InMemoryInventoryStore", "InMemoryOrderStore"]

_V = TypeVar("_V")


class _State:
    """Committed tables: name -> {key: immutable value}, plus the append-only ledger."""

    def __init__(self, *tables: str) -> None:
        self.tables: dict[str, dict[Any, Any]] = {name: {} for name in tables}
        self.ledger: list[StockMovement] = []
        self.lock = threading.RLock()
        self.positions = itertools.count(1)  # of outbox events, in the order written


class _Transaction:
    """The writes of one unit of work, laid over the committed state."""

    def __init__(self, state: _State) -> None:
        self.state = state
        self.writes: dict[str, dict[Any, Any]] = {name: {} for name in state.tables}
        self.appended: list[StockMovement] = []
        self.active = False

    def get(self, table: str, key: object) -> Any:
        writes = self.writes[table]
        return writes[key] if key in writes else self.state.tables[table].get(key)

    def values(self, table: str) -> Iterator[Any]:
        merged = {**self.state.tables[table], **self.writes[table]}
        yield from (value for value in merged.values() if value is not None)

    def insert(self, table: str, key: object, value: object, kind: str) -> None:
        if self.get(table, key) is not None:
            raise Conflict(f"{kind} {key!r} already exists")
        self.writes[table][key] = value

    def put(self, table: str, key: object, value: object) -> None:
        self.writes[table][key] = value

    def delete(self, table: str, key: object) -> None:
        self.writes[table][key] = None  # a tombstone: reads and commit treat it as absent

    def update(self, table: str, key: object, value: _V, kind: str) -> _V:
        current = self.get(table, key)
        if current is None or current.version != value.version:  # type: ignore[attr-defined]
            raise ConcurrencyConflict(kind, str(key))
        saved = attrs.evolve(value, version=value.version + 1)  # type: ignore[attr-defined,misc]
        self.writes[table][key] = saved
        return saved

    def commit(self) -> None:
        for table, writes in self.writes.items():
            committed = self.state.tables[table]
            for key, value in writes.items():
                if value is None:
                    committed.pop(key, None)
                else:
                    committed[key] = value
            writes.clear()
        self.state.ledger.extend(self.appended)
        self.appended.clear()


class _UnitOfWork:
    def __init__(self, state: _State) -> None:
        self._tx = _Transaction(state)

    def __enter__(self) -> Self:
        self._tx.state.lock.acquire()
        self._tx.active = True
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._tx.writes = {name: {} for name in self._tx.state.tables}
        self._tx.appended = []
        self._tx.active = False
        self._tx.state.lock.release()

    def commit(self) -> None:
        if not self._tx.active:
            raise RuntimeError("commit() outside the unit of work's with-block")
        self._tx.commit()


@attrs.frozen
class _OutboxEntry:
    position: int
    event: DomainEvent
    published_at: datetime | None = None


@attrs.frozen
class _Lease:
    owner: str
    until: datetime


class _Outbox:
    def __init__(self, tx: _Transaction) -> None:
        self.tx = tx

    def add(self, events: Sequence[DomainEvent]) -> None:
        for event in events:
            entry = _OutboxEntry(next(self.tx.state.positions), event)
            self.tx.insert("outbox", event.id, entry, "event")

    def pending(self, *, limit: int) -> Sequence[DomainEvent]:
        entries = sorted((e for e in self.tx.values("outbox") if e.published_at is None),
                         key=lambda e: e.position)
        return [e.event for e in entries[:limit]]

    def backlog(self, *, most: int) -> Backlog:
        entries = sorted((e for e in self.tx.values("outbox") if e.published_at is None),
                         key=lambda e: e.position)
        return Backlog(min(len(entries), most), entries[0].event.occurred_at if entries else None)

    def mark_published(self, event_ids: Collection[str], *, at: datetime) -> None:
        for event_id in event_ids:
            entry = self.tx.get("outbox", event_id)
            if entry is not None and entry.published_at is None:
                self.tx.put("outbox", event_id, attrs.evolve(entry, published_at=at))

    def claim(self, relay: str, *, owner: str, now: datetime, until: datetime) -> bool:
        lease = self.tx.get("leases", relay)
        if lease is not None and lease.owner != owner and lease.until > now:
            return False
        self.tx.put("leases", relay, _Lease(owner, until))
        return True

    def purge(self, *, published_before: datetime, limit: int) -> int:
        done = sorted((e for e in self.tx.values("outbox")
                       if e.published_at is not None and e.published_at < published_before),
                      key=lambda e: e.position)[:limit]
        for entry in done:
            self.tx.delete("outbox", entry.event.id)
        return len(done)


# -- inventory ------------------------------------------------------------------------------


class _Products(ProductBatchDefaults):  # get_many, add_many
    def __init__(self, tx: _Transaction) -> None:
        self.tx = tx

    def get(self, sku: str) -> Product | None:
        return self.tx.get("products", sku)  # type: ignore[no-any-return]

    def add(self, product: Product) -> None:
        self.tx.insert("products", product.sku, product, "product")

    def update(self, product: Product) -> None:
        if self.tx.get("products", product.sku) is not None:  # a missing one: nothing
            self.tx.put("products", product.sku, product)

    def list(self, *, active_only: bool, after: str | None, limit: int) -> Sequence[Product]:
        items = sorted(
            (p for p in self.tx.values("products")
             if (not active_only or p.active) and (after is None or p.sku > after)),
            key=lambda p: p.sku,
        )
        return items[:limit]


class _Warehouses:
    def __init__(self, tx: _Transaction) -> None:
        self.tx = tx

    def get(self, code: str) -> Warehouse | None:
        return self.tx.get("warehouses", code)  # type: ignore[no-any-return]

    def add(self, warehouse: Warehouse) -> None:
        self.tx.insert("warehouses", warehouse.code, warehouse, "warehouse")

    def update(self, warehouse: Warehouse) -> None:
        if self.tx.get("warehouses", warehouse.code) is not None:  # a missing one: nothing
            self.tx.put("warehouses", warehouse.code, warehouse)

    def list(self) -> Sequence[Warehouse]:
        return sorted(self.tx.values("warehouses"), key=lambda w: w.code)


class _Stock(StockBatchDefaults):  # update_many
    def __init__(self, tx: _Transaction) -> None:
        self.tx = tx

    def levels(self, skus: Collection[str]) -> Sequence[StockLevel]:
        wanted = set(skus)
        return sorted((lv for lv in self.tx.values("stock") if lv.sku in wanted),
                      key=lambda lv: (lv.sku, lv.warehouse))

    def lock(self, skus: Collection[str]) -> Sequence[StockLevel]:
        return self.levels(skus)  # the unit of work already holds the store's lock

    def add(self, level: StockLevel) -> None:
        self.tx.insert("stock", (level.sku, level.warehouse), level, "stock level")

    def update(self, level: StockLevel) -> StockLevel:
        return self.tx.update("stock", (level.sku, level.warehouse), level, "stock level")

    def low(self, threshold: int, *, limit: int) -> Sequence[tuple[str, int]]:
        totals = dict.fromkeys((p.sku for p in self.tx.values("products") if p.active), 0)
        for level in self.tx.values("stock"):
            if level.sku in totals:
                totals[level.sku] += level.available
        return sorted((sku, n) for sku, n in totals.items() if n <= threshold)[:limit]


class _Reservations:
    def __init__(self, tx: _Transaction) -> None:
        self.tx = tx

    def get(self, reservation_id: str) -> Reservation | None:
        return self.tx.get("reservations", reservation_id)  # type: ignore[no-any-return]

    def add(self, reservation: Reservation) -> None:
        self.tx.insert("reservations", reservation.id, reservation, "reservation")

    def update(self, reservation: Reservation) -> Reservation:
        return self.tx.update("reservations", reservation.id, reservation, "reservation")

    def mark_held(self, reservation_id: str) -> bool:
        reservation = self.get(reservation_id)
        if reservation is None or reservation.status is not ReservationStatus.ACTIVE:
            return False
        self.update(reservation.hold())
        return True

    def expired(self, now: datetime, *, limit: int) -> Sequence[str]:
        due = sorted(
            (r for r in self.tx.values("reservations")
             if r.status is ReservationStatus.ACTIVE and r.expires_at is not None
             and r.expires_at <= now),
            key=lambda r: (r.expires_at, r.id),
        )
        return [r.id for r in due[:limit]]

    def live(self) -> Sequence[Reservation]:
        return sorted((r for r in self.tx.values("reservations") if r.live), key=lambda r: r.id)


class _Movements:
    def __init__(self, tx: _Transaction) -> None:
        self.tx = tx

    def append(self, movement: StockMovement) -> None:
        if movement.idempotency_key is not None and self.by_key(movement.idempotency_key):
            raise Conflict(f"idempotency key {movement.idempotency_key!r} already used")
        self.tx.appended.append(movement)

    def by_key(self, idempotency_key: str) -> StockMovement | None:
        return next((m for m in self._all() if m.idempotency_key == idempotency_key), None)

    def _all(self) -> list[StockMovement]:
        return [*self.tx.state.ledger, *self.tx.appended]

    def list(self, sku: str, *, limit: int) -> Sequence[StockMovement]:
        return [m for m in reversed(self._all()) if m.sku == sku][:limit]

    def sums(self) -> dict[tuple[str, str], int]:
        totals: dict[tuple[str, str], int] = {}
        for m in self._all():
            totals[m.sku, m.warehouse] = totals.get((m.sku, m.warehouse), 0) + m.delta
        return totals


class _InventoryUnitOfWork(_UnitOfWork):
    def __init__(self, state: _State) -> None:
        super().__init__(state)
        self.products = _Products(self._tx)
        self.warehouses = _Warehouses(self._tx)
        self.stock = _Stock(self._tx)
        self.reservations = _Reservations(self._tx)
        self.movements = _Movements(self._tx)
        self.outbox = _Outbox(self._tx)


class InMemoryInventoryStore:
    """An inventory store in this process's memory (``memory://``)."""

    def __init__(self) -> None:
        self._state = _State("products", "warehouses", "stock", "reservations", "outbox",
                             "leases")

    @classmethod
    def from_url(cls, url: str) -> InMemoryInventoryStore:
        return cls()

    def unit_of_work(self) -> _InventoryUnitOfWork:
        return _InventoryUnitOfWork(self._state)

    def close(self) -> None:
        """Nothing to release."""


# -- orders ---------------------------------------------------------------------------------


class _Orders:
    def __init__(self, tx: _Transaction) -> None:
        self.tx = tx

    def get(self, order_id: str) -> Order | None:
        return self.tx.get("orders", order_id)  # type: ignore[no-any-return]

    def add(self, order: Order) -> None:
        self.tx.insert("orders", order.id, order, "order")

    def update(self, order: Order) -> Order:
        return self.tx.update("orders", order.id, order, "order")

    def list(
        self, *, customer_id: str | None, status: OrderStatus | Collection[OrderStatus] | None,
        before: str | None, limit: int,
    ) -> Sequence[Order]:
        wanted = {status} if isinstance(status, OrderStatus) else status
        items = sorted(
            (o for o in self.tx.values("orders")
             if (customer_id is None or o.customer_id == customer_id)
             and (wanted is None or o.status in wanted)
             and (before is None or o.id < before)),
            key=lambda o: o.id, reverse=True,
        )
        return items[:limit]

    def purge_failed(self, *, failed_before: datetime, limit: int) -> int:
        gone = sorted((o for o in self.tx.values("orders")
                       if o.status is OrderStatus.FAILED and o.saga_step is SagaStep.DONE
                       and o.updated_at < failed_before), key=lambda o: o.id)[:limit]
        ids = {o.id for o in gone}
        for order in gone:
            self.tx.delete("orders", order.id)
            self.tx.delete("redemptions", order.id)
            if order.payment_id is not None:
                self.tx.delete("payments", order.payment_id)
        for record in list(self.tx.values("idempotency")):
            if record.order_id in ids:
                self.tx.delete("idempotency", (record.scope, record.key))
        return len(gone)

    def summary(self, *, since: str) -> Sequence[SummaryRow]:
        groups: dict[tuple[OrderStatus, str | None, str], list[int]] = {}
        for order in self.tx.values("orders"):
            if order.id >= since:
                payment = (None if order.payment_id is None
                           else self.tx.get("payments", order.payment_id))
                group = groups.setdefault((order.status, order.failure_reason,
                                           order.currency), [0, 0])
                group[0] += 1
                group[1] += 0 if payment is None else payment.amount.amount
        return [SummaryRow(status, reason, currency, count, amount)
                for (status, reason, currency), (count, amount) in groups.items()]

    def open_returns(self, *, limit: int) -> Sequence[Order]:
        waiting = {ReturnStatus.REQUESTED, ReturnStatus.RECEIVED}
        items = sorted((o for o in self.tx.values("orders")
                        if any(r.status in waiting for r in o.returns)),
                       key=lambda o: o.id, reverse=True)
        return items[:limit]

    def unfinished(self, *, updated_before: datetime, limit: int) -> Sequence[Order]:
        items = sorted(
            (o for o in self.tx.values("orders")
             if o.saga_step is not SagaStep.DONE and o.updated_at <= updated_before),
            key=lambda o: (o.updated_at, o.id),
        )
        return items[:limit]


class _Payments(PaymentBatchDefaults):  # get_many
    def __init__(self, tx: _Transaction) -> None:
        self.tx = tx

    def get(self, payment_id: str) -> Payment | None:
        return self.tx.get("payments", payment_id)  # type: ignore[no-any-return]

    def by_authorization(self, authorization_id: str) -> Payment | None:
        return next((p for p in self.tx.values("payments")
                     if p.authorization_id == authorization_id), None)

    def add(self, payment: Payment) -> None:
        self.tx.insert("payments", payment.id, payment, "payment")

    def update(self, payment: Payment) -> Payment:
        return self.tx.update("payments", payment.id, payment, "payment")

    def list(self, *, after: str | None, limit: int) -> Sequence[Payment]:
        items = sorted((p for p in self.tx.values("payments")
                        if after is None or p.id > after), key=lambda p: p.id)
        return items[:limit]


class _Idempotency:
    def __init__(self, tx: _Transaction) -> None:
        self.tx = tx

    def get(self, scope: str, key: str) -> IdempotencyRecord | None:
        return self.tx.get("idempotency", (scope, key))  # type: ignore[no-any-return]

    def add(self, record: IdempotencyRecord) -> None:
        self.tx.insert("idempotency", (record.scope, record.key), record, "idempotency key")

    def save_response(self, scope: str, key: str, status: int, body: str) -> None:
        record = self.get(scope, key)
        if record is not None and record.response_status is None:
            self.tx.put("idempotency", (scope, key), attrs.evolve(
                record, response_status=status, response_body=body))

    def purge_requests(self, *, created_before: datetime, limit: int) -> int:
        old = sorted((r for r in self.tx.values("idempotency")
                      if r.order_id is None and r.created_at < created_before),
                     key=lambda r: (r.created_at, r.scope, r.key))[:limit]
        for record in old:
            self.tx.delete("idempotency", (record.scope, record.key))
        return len(old)

    def discard(self, scope: str, key: str, *, created_at: datetime) -> bool:
        record = self.get(scope, key)
        if (record is None or record.created_at != created_at
                or record.response_status is not None):
            return False
        self.tx.delete("idempotency", (scope, key))
        return True


class _Notifications:
    def __init__(self, tx: _Transaction) -> None:
        self.tx = tx

    def add(self, provider: str, event_id: str, *, kind: str, reference: str | None,
            at: datetime) -> None:
        self.tx.insert("notifications", (provider, event_id), (kind, reference, at),
                       "notification")

    def seen(self, provider: str, event_id: str) -> bool:
        return self.tx.get("notifications", (provider, event_id)) is not None


@attrs.frozen
class _Redemption:
    code: str
    order_id: str
    customer_id: str
    at: datetime


class _Redemptions:
    """Uses of vouchers by order id (the store's lock serialises the units of work, so the
    limits hold as they do under the database's row lock)."""

    def __init__(self, tx: _Transaction) -> None:
        self.tx = tx

    def redeem(self, code: str, *, order_id: str, customer_id: str, usage_limit: int | None,
               once_per_customer: bool, at: datetime) -> None:
        if usage_limit is not None and self.used(code) >= usage_limit:
            raise VoucherNotApplicable(code, "used-up", f"voucher {code!r} is used up")
        if once_per_customer and self.used_by(code, customer_id):
            raise VoucherNotApplicable(code, "already-used",
                                       f"voucher {code!r} was used by this customer already")
        self.tx.insert("redemptions", order_id, _Redemption(code, order_id, customer_id, at),
                       "redemption")

    def release(self, order_id: str) -> bool:
        if self.tx.get("redemptions", order_id) is None:
            return False
        self.tx.delete("redemptions", order_id)
        return True

    def used(self, code: str) -> int:
        return sum(1 for r in self.tx.values("redemptions") if r.code == code)

    def used_by(self, code: str, customer_id: str) -> bool:
        return any(r.code == code and r.customer_id == customer_id
                   for r in self.tx.values("redemptions"))


class _OrderUnitOfWork(_UnitOfWork):
    def __init__(self, state: _State) -> None:
        super().__init__(state)
        self.orders = _Orders(self._tx)
        self.payments = _Payments(self._tx)
        self.idempotency = _Idempotency(self._tx)
        self.outbox = _Outbox(self._tx)
        self.notifications = _Notifications(self._tx)
        self.redemptions = _Redemptions(self._tx)


class InMemoryOrderStore:
    """An order store in this process's memory (``memory://``)."""

    def __init__(self) -> None:
        self._state = _State("orders", "payments", "idempotency", "outbox", "leases",
                             "notifications", "redemptions")
        self._webhooks = InMemoryWebhookStore()

    @classmethod
    def from_url(cls, url: str) -> InMemoryOrderStore:
        return cls()

    def unit_of_work(self) -> _OrderUnitOfWork:
        return _OrderUnitOfWork(self._state)

    def webhook_store(self) -> InMemoryWebhookStore:
        """Outbound webhooks' endpoints and deliveries, beside the orders."""
        return self._webhooks

    def close(self) -> None:
        """Nothing to release."""

"""The order service: reading orders and their payments, and changing what belongs to the
order alone (its metadata)."""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence
from datetime import datetime, timedelta

import attrs

from commerce_core._validate import (
    MAX_METADATA_KEYS,
    Errors,
    check_metadata_key,
    check_metadata_value,
)
from commerce_core.clock import Clock, first_id_at, system_clock
from commerce_core.errors import (
    ConcurrencyConflict,
    Conflict,
    FieldError,
    InvalidInput,
    NotFound,
)
from commerce_core.orders.events import order_event
from commerce_core.orders.model import (
    IdempotencyRecord,
    Order,
    OrderStatus,
    Return,
    order_of_return,
)
from commerce_core.orders.ports import OrderReports, OrderStore, SummaryRow
from commerce_core.pagination import Page, check_limit, decode_cursor, page_of
from commerce_core.payments.model import Payment

__all__ = ["OrderService"]


class OrderService:
    """Queries of the order context, and its one command of its own (`update_metadata`).
    Commands that span stores live in the checkout."""

    def __init__(self, store: OrderStore, *, clock: Clock = system_clock) -> None:
        self.store = store
        self.clock = clock

    def get(self, order_id: str, *, customer_id: str | None = None) -> Order:
        """One order; with ``customer_id``, only that customer's (others are not found)."""
        if not isinstance(order_id, str) or not order_id.isprintable():
            raise NotFound("order", repr(order_id))  # no order has such an id
        with self.store.unit_of_work() as uow:
            order = uow.orders.get(order_id)
        if order is None or (customer_id is not None and order.customer_id != customer_id):
            raise NotFound("order", order_id)
        return order

    def returns(self, order_id: str, *, customer_id: str | None = None) -> tuple[Return, ...]:
        """The returns of an order, oldest first (with ``customer_id``, only that customer's
        order: others are not found)."""
        return self.get(order_id, customer_id=customer_id).returns

    def get_return(self, return_id: str, *, customer_id: str | None = None) -> Return:
        """One return (with ``customer_id``, only of that customer's order)."""
        try:
            order = self.get(order_of_return(return_id), customer_id=customer_id)
        except NotFound:
            raise NotFound("return", str(return_id)) from None
        return order.return_of(return_id)

    def list(
        self, *, customer_id: str | None = None,
        status: OrderStatus | Collection[OrderStatus] | None = None,
        limit: int = 20, cursor: str | None = None,
    ) -> Page[Order]:
        """Orders newest first, a page at a time, optionally of one customer, and of one
        status or any of several."""
        check_limit(limit)
        before = decode_cursor(cursor)
        if customer_id is not None and (not isinstance(customer_id, str)
                                        or not customer_id.isprintable()):
            raise InvalidInput("invalid customer id", [FieldError(
                "customer_id", "must be printable text")])  # no store is asked for a NUL
        with self.store.unit_of_work() as uow:
            items = uow.orders.list(
                customer_id=customer_id, status=status, before=before, limit=limit + 1
            )
        return page_of(items, limit, items[limit - 1].id if len(items) > limit else None)

    def scan(
        self, *, customer_id: str | None = None,
        status: OrderStatus | Collection[OrderStatus] | None = None,
        page_size: int = 100,
    ) -> Iterator[Order]:
        """Every matching order, newest first, read a page (one short transaction) at a time:
        for reports, exports and checks over the whole store."""
        cursor: str | None = None
        while True:
            page = self.list(customer_id=customer_id, status=status, limit=page_size,
                             cursor=cursor)
            yield from page.items
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def update_metadata(self, order_id: str, changes: Mapping[str, str | None]) -> Order:
        """Merge ``changes`` into the order's metadata (an admin's): a string sets a key,
        ``None`` removes it; the result keeps the limits of placing (20 keys
        ``^[a-z0-9_.-]{1,40}$``, values of at most 500 characters), else `InvalidInput` and
        nothing changed. Written with an ``order.metadata_changed`` event naming the keys.

        An order whose saga is running (a checkout, a shipment, a refund) is not changed:
        `ConcurrencyConflict`, try again in a moment. A change racing another is retried on
        the order as the other left it."""
        errors = Errors()
        given: object = changes
        if not isinstance(given, Mapping):
            raise InvalidInput("invalid metadata", [FieldError("metadata", "must be an object")])
        for key, value in changes.items():
            if check_metadata_key(errors, "metadata", key) and value is not None:
                check_metadata_value(errors, f"metadata.{key}", value)
        errors.raise_if_any("invalid metadata")
        for _ in range(5):
            with self.store.unit_of_work() as uow:
                order = uow.orders.get(order_id)
                if order is None:
                    raise NotFound("order", order_id)
                if not order.finished:
                    raise ConcurrencyConflict("order", order_id)
                metadata = dict(order.metadata)
                for key, value in changes.items():
                    if value is None:
                        metadata.pop(key, None)
                    else:
                        metadata[key] = value
                if len(metadata) > MAX_METADATA_KEYS:
                    raise InvalidInput("invalid metadata", [FieldError(
                        "metadata", f"the order would have {len(metadata)} keys; at most "
                        f"{MAX_METADATA_KEYS}")])
                if metadata == order.metadata:
                    return order
                changed = attrs.evolve(order, metadata=metadata, updated_at=self.clock())
                try:
                    saved = uow.orders.update(changed)
                except ConcurrencyConflict:
                    continue
                uow.outbox.add([order_event("order.metadata_changed", saved, saved.updated_at,
                                            changed=sorted(changes))])
                uow.commit()
                return saved
        raise ConcurrencyConflict("order", order_id)

    def summary(self, since: datetime) -> tuple[SummaryRow, ...] | None:
        """The orders created since ``since`` (by their id's time), counted and summed by
        status, failure reason and currency: one aggregate read. ``None`` when the order
        store does not offer reports (`OrderReports`)."""
        with self.store.unit_of_work() as uow:
            reports = uow.orders
            if not isinstance(reports, OrderReports):
                return None
            rows = reports.summary(since=first_id_at("ord", since))
        return tuple(sorted(rows, key=lambda r: (r.status.value, r.failure_reason or "",
                                                  r.currency)))

    def open_returns(self, *, limit: int = 20) -> tuple[Order, ...] | None:
        """Orders with a return waiting for an admin (requested, or received and not yet
        refunded), newest first; ``None`` when the store does not offer reports."""
        check_limit(limit)
        with self.store.unit_of_work() as uow:
            reports = uow.orders
            if not isinstance(reports, OrderReports):
                return None
            return tuple(reports.open_returns(limit=limit))

    def voucher_uses(self, codes: Collection[str]) -> dict[str, int]:
        """How many orders hold a use of each voucher code (one read)."""
        with self.store.unit_of_work() as uow:
            return {code: uow.redemptions.used(code) for code in codes}

    def idempotency_record(self, scope: str, key: str) -> IdempotencyRecord | None:
        """The command accepted under ``key`` for ``scope`` (a customer), if any."""
        with self.store.unit_of_work() as uow:
            return uow.idempotency.get(scope, key)

    def save_response(self, scope: str, key: str, *, status: int, body: str) -> None:
        """Keep the response a driving adapter gave under ``key``, for exact replays."""
        with self.store.unit_of_work() as uow:
            uow.idempotency.save_response(scope, key, status, body)
            uow.commit()

    def claim_key(
        self, scope: str, key: str, fingerprint: str, *, stale_after: timedelta,
    ) -> tuple[IdempotencyRecord, bool]:
        """Take ``key`` for a request of a driving adapter that makes no order (a refund, a
        stock adjustment, a shipment over HTTP): the record, and whether this caller holds
        it now. A record of a request that never finished (no response kept) and is older
        than ``stale_after`` is taken over: its process died, and the request may run
        again (the commands below are themselves idempotent). Otherwise the existing record
        comes back unclaimed, for the caller to replay its response, or to answer that its
        request is still running, or that the key was used for another request."""
        record = IdempotencyRecord(scope, key, fingerprint, None, self.clock())
        try:
            with self.store.unit_of_work() as uow:
                uow.idempotency.add(record)
                uow.commit()
            return record, True
        except Conflict:
            pass
        for _ in range(3):  # others may release or take it over meanwhile
            try:
                with self.store.unit_of_work() as uow:
                    existing = uow.idempotency.get(scope, key)
                    if existing is not None and not (
                            existing.response_status is None
                            and existing.fingerprint == fingerprint
                            and existing.created_at <= record.created_at - stale_after
                            and uow.idempotency.discard(scope, key,
                                                        created_at=existing.created_at)):
                        return existing, False
                    uow.idempotency.add(record)  # released, or given up: take it
                    uow.commit()
                    return record, True
            except Conflict:
                continue
        raise Conflict(f"idempotency key {key!r} keeps changing hands")

    def release_key(self, record: IdempotencyRecord) -> None:
        """Give back a key claimed by `claim_key` whose request had no lasting answer (a
        503: the same request may be tried again under it)."""
        with self.store.unit_of_work() as uow:
            uow.idempotency.discard(record.scope, record.key, created_at=record.created_at)
            uow.commit()

    def payment(self, order: Order) -> Payment | None:
        """The payment record of an order."""
        return self.payments([order]).get(order.id)

    def payments(self, orders: Sequence[Order]) -> dict[str, Payment]:
        """The payment records of these orders, by order id, in one read."""
        ids = [o.payment_id for o in orders if o.payment_id is not None]
        if not ids:
            return {}
        with self.store.unit_of_work() as uow:
            found = uow.payments.get_many(ids)
        return {p.order_id: p for p in found.values()}

"""The inventory service: catalogue, warehouses, stock adjustments and reservations."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar

import attrs

from commerce_core._validate import (
    Errors,
    check_idempotency_key,
    check_identifier,
    check_instance,
    check_positive_int,
    check_text,
    units_by_sku,
)
from commerce_core.clock import Clock, system_clock
from commerce_core.errors import (
    ConcurrencyConflict,
    Conflict,
    IdempotencyKeyReused,
    InvalidInput,
    NotFound,
)
from commerce_core.events import DomainEvent
from commerce_core.inventory.model import (
    LineRequest,
    Product,
    Reservation,
    ReservationLine,
    ReservationStatus,
    StockLevel,
    StockMovement,
    Warehouse,
    allocate,
)
from commerce_core.inventory.ports import InventoryStore, InventoryUnitOfWork
from commerce_core.money import Money
from commerce_core.pagination import Page, check_limit, decode_cursor, page_of
from commerce_core.retry import RetryPolicy, retry_transactions

__all__ = ["ImportReport", "InventoryService", "ReservationExpired", "StockSummary"]

log = logging.getLogger("commerce_core.inventory")

#: How often a unit of work that lost a race (a row created or changed between its read and
#: its write by another) runs again, reading afresh, before the conflict is raised.
_RACES = 5


class _RowTaken(Exception):
    """A row this unit of work meant to create was created concurrently: run it again."""

#: Largest single adjustment or line quantity accepted.
MAX_QUANTITY = 1_000_000


class ReservationExpired(Conflict):
    """The reservation is no longer live (expired or released), so its stock is not held."""

    code = "reservation-expired"

    def __init__(self, reservation_id: str, status: str) -> None:
        super().__init__(reservation_id, status)
        self.reservation_id = reservation_id
        self.status = status

    def __str__(self) -> str:
        return f"reservation {self.reservation_id!r} is {self.status}"


@attrs.frozen
class StockSummary:
    """A SKU's stock in every warehouse and in all."""

    sku: str
    levels: tuple[StockLevel, ...]

    @property
    def on_hand(self) -> int:
        return sum(level.on_hand for level in self.levels)

    @property
    def reserved(self) -> int:
        return sum(level.reserved for level in self.levels)

    @property
    def available(self) -> int:
        return sum(level.available for level in self.levels)


def _stock_event(
    type_: str, sku: str, levels: Sequence[StockLevel], at: datetime,
    details: dict[str, object],
) -> DomainEvent:
    """An event of a SKU's stock; ``sequence`` is the sum of its levels' versions, which every
    change to any of them raises."""
    return DomainEvent.new(
        type_, aggregate_type="sku", aggregate_id=sku,
        sequence=sum(level.version for level in levels), at=at,
        payload={"sku": sku, "available": sum(level.available for level in levels), **details},
    )


def _check_product(errors: Errors, where: str, product: Product) -> None:
    """A product's fields, at paths ``<where>sku``, ``<where>name``, ..."""
    check_identifier(errors, f"{where}sku", product.sku)
    check_text(errors, f"{where}name", product.name)
    check_instance(errors, f"{where}price", product.price, Money, "Money")
    check_instance(errors, f"{where}active", product.active, bool, "a boolean")


def _levels_by_sku(levels: Sequence[StockLevel]) -> dict[str, list[StockLevel]]:
    grouped: dict[str, list[StockLevel]] = defaultdict(list)
    for level in levels:
        grouped[level.sku].append(level)
    return grouped


#: The most products `InventoryService.import_products` writes in one transaction.
MAX_IMPORT_BATCH = 10_000


@attrs.frozen
class ImportReport:
    """What `InventoryService.import_products` did: products created, updated (name, price or
    active changed) and left as they were."""

    created: int
    updated: int
    unchanged: int


class InventoryService:
    """Use cases of the inventory context. Every method is one transaction on the store;
    those that write run again when the database gives up on them for a passing reason
    (`TransientStoreError`: a deadlock, a serialization failure), by ``store_retry``."""

    def __init__(
        self, store: InventoryStore, *, clock: Clock = system_clock,
        store_retry: RetryPolicy | None = None, low_stock_threshold: int | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.store_retry = store_retry or RetryPolicy.for_store()
        #: A reservation that takes a SKU's available units (all warehouses) from above this
        #: to at or below it writes a ``stock.low`` event; ``None``: no such events.
        self.low_stock_threshold = low_stock_threshold

    # -- catalogue -------------------------------------------------------------------------

    @retry_transactions
    def upsert_product(
        self, sku: str, *, name: str, price: Money, active: bool = True
    ) -> tuple[Product, bool]:
        """Create or update a product; returns it and whether it was created."""
        errors = Errors()
        product = Product(sku, name, price, active)
        _check_product(errors, "", product)
        errors.raise_if_any("invalid product")
        return product, self._upsert(lambda uow: uow.products, sku, product)

    def import_products(
        self, products: Iterable[Product], *, batch_size: int = 1000,
        on_progress: Callable[[int], None] | None = None,
    ) -> ImportReport:
        """Create or update many products (a catalogue feed, a migration), in bulk.

        Every product is checked before anything is written: bad ones raise `InvalidInput`
        naming each (``products[7].sku``) and nothing changes. Then they are written
        ``batch_size`` at a time, each batch one transaction (a bulk insert of the new SKUs,
        an update of the changed ones), and ``on_progress`` is called after each with how many
        it held. A failure part-way (the database gone) leaves the earlier batches written;
        importing the same products again finishes the job, as it is an upsert.
        """
        given: list[object] = list(products)
        errors = Errors()
        check_positive_int(errors, "batch_size", batch_size, maximum=MAX_IMPORT_BATCH)
        seen: set[str] = set()
        for index, product in enumerate(given):
            where = f"products[{index}]"
            if not isinstance(product, Product):
                errors.add(where, "must be a Product")
                continue
            _check_product(errors, f"{where}.", product)
            if product.sku in seen:
                errors.add(f"{where}.sku", f"sku {product.sku!r} appears more than once")
            seen.add(product.sku)
        errors.raise_if_any("invalid product import")
        items = [product for product in given if isinstance(product, Product)]  # all of them
        created = updated = 0
        for start in range(0, len(items), batch_size):
            batch = items[start:start + batch_size]
            new, changed = self._import_batch(batch)
            created, updated = created + new, updated + changed
            if on_progress is not None:
                on_progress(len(batch))
        return ImportReport(created, updated, len(items) - created - updated)

    @retry_transactions
    def _import_batch(self, batch: Sequence[Product]) -> tuple[int, int]:
        with self.store.unit_of_work() as uow:
            existing = uow.products.get_many([p.sku for p in batch])
            new = [p for p in batch if p.sku not in existing]
            changed = [p for p in batch if p.sku in existing and existing[p.sku] != p]
            if new:
                uow.products.add_many(new)
            for product in changed:
                uow.products.update(product)
            uow.commit()
        return len(new), len(changed)

    def get_product(self, sku: str) -> Product:
        """One product, active or not; `NotFound` for an unknown SKU (and for what cannot
        be a SKU: no store is asked for a string with a NUL in it)."""
        if not isinstance(sku, str) or not sku.isprintable():
            raise NotFound("product", repr(sku))
        with self.store.unit_of_work() as uow:
            product = uow.products.get(sku)
        if product is None:
            raise NotFound("product", sku)
        return product

    def get_products(self, skus: Sequence[str]) -> dict[str, Product]:
        """The products among ``skus`` that exist, by SKU."""
        with self.store.unit_of_work() as uow:
            return uow.products.get_many(skus)

    def list_products(
        self, *, active_only: bool = True, limit: int = 20, cursor: str | None = None
    ) -> Page[Product]:
        """Products in SKU order, a page at a time."""
        check_limit(limit)
        after = decode_cursor(cursor)
        with self.store.unit_of_work() as uow:
            items = uow.products.list(active_only=active_only, after=after, limit=limit + 1)
        return page_of(items, limit, items[limit - 1].sku if len(items) > limit else None)

    @retry_transactions
    def upsert_warehouse(self, code: str, *, name: str) -> tuple[Warehouse, bool]:
        errors = Errors()
        check_identifier(errors, "code", code)
        check_text(errors, "name", name)
        errors.raise_if_any("invalid warehouse")
        warehouse = Warehouse(code, name)
        return warehouse, self._upsert(lambda uow: uow.warehouses, code, warehouse)

    def _upsert(self, repository: Callable[[InventoryUnitOfWork], Any], key: str,
                row: Product | Warehouse) -> bool:
        """Create or update ``row`` in one transaction; whether it was created. A row created
        concurrently between the read and the insert is updated instead."""
        for _ in range(_RACES):
            try:
                with self.store.unit_of_work() as uow:
                    rows = repository(uow)
                    created = rows.get(key) is None
                    if created:
                        _insert(rows.add, row)
                    else:
                        rows.update(row)
                    uow.commit()
                return bool(created)
            except _RowTaken:
                continue
        raise Conflict(f"{key!r} keeps changing concurrently")

    def list_warehouses(self) -> Sequence[Warehouse]:
        with self.store.unit_of_work() as uow:
            return uow.warehouses.list()

    # -- stock -----------------------------------------------------------------------------

    @retry_transactions
    def adjust_stock(
        self, sku: str, warehouse: str, *, delta: int, reason: str, reference: str | None = None,
        idempotency_key: str | None = None,
    ) -> StockLevel:
        """Change ``on_hand`` by ``delta`` (receipt, count correction, damage) with a reason.

        Raises `StockConflict` if ``on_hand`` would drop below zero
        or below what is reserved; nothing changes then. With an ``idempotency_key`` (unique
        in the inventory store) the same adjustment asked for again is applied once: the
        repeat returns the level as it now stands, and the key with another adjustment
        raises `IdempotencyKeyReused`.
        """
        errors = Errors()
        check_identifier(errors, "sku", sku)
        check_identifier(errors, "warehouse", warehouse)
        if type(delta) is not int or delta == 0 or abs(delta) > MAX_QUANTITY:
            errors.add("delta", f"must be a non-zero integer within ±{MAX_QUANTITY}")
        check_text(errors, "reason", reason)
        if reference is not None:
            check_text(errors, "reference", reference, max_length=100)
        errors.raise_if_any("invalid adjustment")
        if idempotency_key is not None:
            check_idempotency_key(idempotency_key)
        wanted = StockMovement(sku, warehouse, delta, reason, self.clock(), reference,
                               idempotency_key)
        for _ in range(_RACES):
            try:
                return self._adjust(wanted)
            except _RowTaken:  # the first receipt of this (sku, warehouse) raced another
                continue
        raise ConcurrencyConflict("stock level", f"{sku}/{warehouse}")

    def _adjust(self, wanted: StockMovement) -> StockLevel:
        sku, warehouse, key = wanted.sku, wanted.warehouse, wanted.idempotency_key
        try:
            with self.store.unit_of_work() as uow:
                if key is not None and (done := uow.movements.by_key(key)) is not None:
                    return self._replayed(uow, done, wanted)
                if uow.products.get(sku) is None:
                    raise NotFound("product", sku)
                if uow.warehouses.get(warehouse) is None:
                    raise NotFound("warehouse", warehouse)
                others = list(uow.stock.lock([sku]))  # every warehouse's level of the SKU
                current = next((lv for lv in others if lv.warehouse == warehouse), None)
                if current is None:
                    # no row to lock yet: two first receipts may both get here, and the
                    # loser's insert fails on the key; it then runs again and finds the row
                    level = StockLevel(sku, warehouse).adjusted(wanted.delta)
                    _insert(uow.stock.add, level)
                else:
                    others.remove(current)
                    level = uow.stock.update(current.adjusted(wanted.delta))
                now = self.clock()
                movement = attrs.evolve(wanted, at=now)
                if key is None:
                    uow.movements.append(movement)
                else:
                    _insert(uow.movements.append, movement)
                uow.outbox.add([_stock_event("stock.adjusted", sku, [*others, level], now, {
                    "warehouse": warehouse, "delta": wanted.delta, "reason": wanted.reason,
                    "reference": wanted.reference, "on_hand": level.on_hand,
                })])
                uow.commit()
            return level
        except _RowTaken:
            if key is None:
                raise
            with self.store.unit_of_work() as uow:  # the same key, concurrently: replay it
                done = uow.movements.by_key(key)
                if done is None:
                    raise
                return self._replayed(uow, done, wanted)

    @staticmethod
    def _replayed(uow: InventoryUnitOfWork, done: StockMovement,
                  wanted: StockMovement) -> StockLevel:
        """The answer to an adjustment made before under the same key: the level now."""
        same = (done.sku, done.warehouse, done.delta, done.reason, done.reference) == (
            wanted.sku, wanted.warehouse, wanted.delta, wanted.reason, wanted.reference)
        if not same:
            raise IdempotencyKeyReused(str(wanted.idempotency_key))
        level = next((lv for lv in uow.stock.levels([done.sku])
                      if lv.warehouse == done.warehouse), None)
        return level if level is not None else StockLevel(done.sku, done.warehouse)

    def stock(self, sku: str) -> StockSummary:
        """Levels of one SKU in every warehouse; `NotFound` for an unknown SKU."""
        if not isinstance(sku, str) or not sku.isprintable():
            raise NotFound("product", repr(sku))
        with self.store.unit_of_work() as uow:
            if uow.products.get(sku) is None:
                raise NotFound("product", sku)
            return StockSummary(sku, tuple(uow.stock.levels([sku])))

    def availability(self, skus: Sequence[str]) -> dict[str, int]:
        """Available units per SKU summed over warehouses (0 for a SKU with no stock)."""
        with self.store.unit_of_work() as uow:
            totals = dict.fromkeys(skus, 0)
            for level in uow.stock.levels(skus):
                totals[level.sku] += level.available
        return totals

    def low_stock(self, threshold: int, *, limit: int = 100) -> Sequence[tuple[str, int]]:
        """SKUs whose available stock, over all warehouses, is at or below ``threshold``."""
        if type(threshold) is not int or threshold < 0:
            raise InvalidInput("invalid threshold")
        check_limit(limit)
        with self.store.unit_of_work() as uow:
            return uow.stock.low(threshold, limit=limit)

    def movements(self, sku: str, *, limit: int = 100) -> Sequence[StockMovement]:
        """The ledger of one SKU, newest first."""
        check_limit(limit)
        if not isinstance(sku, str) or not sku.isprintable():
            raise NotFound("product", repr(sku))
        with self.store.unit_of_work() as uow:
            return uow.movements.list(sku, limit=limit)

    # -- reservations ----------------------------------------------------------------------

    @retry_transactions
    def reserve(
        self, reservation_id: str, *, reference: str, lines: Sequence[LineRequest],
        ttl: timedelta,
    ) -> Reservation:
        """Reserve every line or none, splitting a line across warehouses where needed.

        Idempotent on ``reservation_id``: a second call returns the existing reservation if
        it is still live and raises `ReservationExpired` if it is not.
        """
        errors = Errors()
        check_text(errors, "reservation_id", reservation_id, max_length=100)
        check_text(errors, "reference", reference, max_length=100)
        check_instance(errors, "ttl", ttl, timedelta, "a timedelta")
        given: Sequence[object] = lines if isinstance(lines, list | tuple) else ()
        if not given:
            errors.add("lines", "must be a non-empty list of LineRequest")
        for index, line in enumerate(given):
            if not isinstance(line, LineRequest):
                errors.add(f"lines[{index}]", "must be a LineRequest")
                continue
            check_identifier(errors, f"lines[{index}].sku", line.sku)
            check_positive_int(errors, f"lines[{index}].quantity", line.quantity,
                               maximum=MAX_QUANTITY)
        skus = [line.sku for line in given if isinstance(line, LineRequest)]
        if len(set(skus)) != len(skus):
            errors.add("lines", "a SKU may appear only once")
        errors.raise_if_any("invalid reservation")
        try:
            # optimistic: a new reservation is the common case, so its id is not looked up
            # first; the id's primary key turns a repeat into a Conflict
            with self.store.unit_of_work() as uow:
                levels = uow.stock.lock([line.sku for line in lines])
                allocation = allocate(lines, _levels_by_sku(levels))
                by_key = {(lv.sku, lv.warehouse): lv for lv in levels}
                changed = [by_key[(part.sku, part.warehouse)].with_reserved(part.quantity)
                           for part in allocation]
                for level in uow.stock.update_many(changed):  # in (sku, warehouse) order
                    by_key[(level.sku, level.warehouse)] = level
                now = self.clock()
                uow.outbox.add(self._low_stock_events(levels, list(by_key.values()), now))
                reservation = Reservation(
                    reservation_id, reference, allocation, ReservationStatus.ACTIVE, now,
                    now + ttl,
                )
                uow.reservations.add(reservation)
                uow.commit()
        except Conflict:  # the id taken (a repeat), or InsufficientStock
            # a repeat: the reservation made before answers, even if the stock it holds
            # could not be reserved again now
            with self.store.unit_of_work() as uow:
                existing = uow.reservations.get(reservation_id)
            if existing is None:
                raise
            if not existing.live:
                raise ReservationExpired(reservation_id, existing.status) from None
            return existing
        return reservation

    def get_reservation(self, reservation_id: str) -> Reservation:
        with self.store.unit_of_work() as uow:
            reservation = uow.reservations.get(reservation_id)
        if reservation is None:
            raise NotFound("reservation", reservation_id)
        return reservation

    @retry_transactions
    def hold(self, reservation_id: str) -> Reservation:
        """Keep a live reservation until it is committed or released (its order is confirmed).

        An expiry sweep may expire it between this read and this write: the write then
        fails its version check, the reservation is read again, and `ReservationExpired`
        says the hold lost that race (its order fails cleanly)."""
        def attempt() -> Reservation:
            with self.store.unit_of_work() as uow:
                reservation = self._live(uow, reservation_id)
                if reservation.status is ReservationStatus.HELD:
                    return reservation
                reservation = uow.reservations.update(reservation.hold())
                uow.commit()
            return reservation

        return _reading_afresh(attempt)

    @retry_transactions
    def place_hold(self, reservation_id: str) -> None:
        """`hold`, without the reservation back: the checkout's hold. Where the store can
        (``ReservationRepository.mark_held``), one write guarded by the reservation's status
        (active → held) and nothing read; a reservation that was not active is then read to
        tell which it was, with `hold`'s answers: held already, fine; `NotFound`;
        `ReservationExpired`. An expiry sweep that reads it before this write finds its
        version changed and leaves it (as with `hold`)."""
        with self.store.unit_of_work() as uow:
            mark = getattr(uow.reservations, "mark_held", None)
            if mark is not None and mark(reservation_id):
                uow.commit()
                return
        self.hold(reservation_id)

    @retry_transactions
    def commit(self, reservation_id: str) -> Reservation:
        """The reserved stock ships: on_hand and reserved drop, the ledger records it.

        Idempotent: committing a committed reservation returns it unchanged.
        """
        def attempt() -> Reservation:
            with self.store.unit_of_work() as uow:
                reservation = uow.reservations.get(reservation_id)
                if reservation is None:
                    raise NotFound("reservation", reservation_id)
                if reservation.status is ReservationStatus.COMMITTED:
                    return reservation
                if not reservation.live:
                    raise ReservationExpired(reservation_id, reservation.status)
                left = reservation.outstanding
                reservation = uow.reservations.update(reservation.commit())
                self._apply(uow, left, reservation.reference, commit=True)
                uow.commit()
            return reservation

        return _reading_afresh(attempt)

    @retry_transactions
    def commit_part(self, reservation_id: str, *, shipment: str,
                    lines: Sequence[LineRequest], warehouse: str | None = None) -> Reservation:
        """Part of a held reservation ships, as one parcel: ``lines`` say how many units of
        which SKUs, taken from ``warehouse`` if given (else from the reservation's lines in
        their order). ``on_hand`` and ``reserved`` drop by them and the ledger records each
        (reason ``shipment``, the order as reference); the reservation is committed once
        nothing is left. The rest stays held until it ships or is released.

        Idempotent by ``shipment``, the parcel's id within the reservation (its ledger
        entries are keyed ``<reservation>/<shipment>#<n>``): asked again, it returns the
        reservation as it stands; a key an adjustment took is `IdempotencyKeyReused`.
        `InvalidInput` for more units than are left (of a SKU, or in that warehouse);
        `ReservationExpired` if the reservation no longer holds stock; `InvalidTransition` if
        it is not held (its order not confirmed).
        """
        errors = Errors()
        check_identifier(errors, "shipment", shipment)
        if warehouse is not None:
            check_identifier(errors, "warehouse", warehouse)
        wanted = units_by_sku(errors, lines, LineRequest, MAX_QUANTITY)
        errors.raise_if_any("invalid shipment")
        key = f"{reservation_id}/{shipment}"  # the parcel's, in this reservation

        def attempt() -> Reservation:
            with self.store.unit_of_work() as uow:
                reservation = uow.reservations.get(reservation_id)
                if reservation is None:
                    raise NotFound("reservation", reservation_id)
                found = uow.movements.by_key(f"{key}#0")
                if found is not None:
                    if found.reason != "shipment" or found.reference != reservation.reference:
                        raise IdempotencyKeyReused(f"{key}#0")  # an adjustment's key
                    return reservation  # this parcel shipped already
                if not reservation.live:
                    raise ReservationExpired(reservation_id, reservation.status)
                shipped = _take(reservation, wanted, warehouse)
                reservation = uow.reservations.update(reservation.commit_part(shipped))
                self._apply(uow, tuple(ReservationLine(sku, at, units)
                                       for (sku, at), units in shipped.items()),
                            reservation.reference, commit=True, key=key)
                uow.commit()
            return reservation

        return _reading_afresh(attempt)

    @retry_transactions
    def release(self, reservation_id: str) -> Reservation | None:
        """Give the reserved stock back. Idempotent; ``None`` if there never was a reservation.

        A committed reservation is returned unchanged: its goods have left and only a
        stock adjustment can bring them back.
        """
        def attempt() -> Reservation | None:
            with self.store.unit_of_work() as uow:
                reservation = uow.reservations.get(reservation_id)
                if reservation is None or not reservation.live:
                    return reservation
                left = reservation.outstanding
                reservation = uow.reservations.update(reservation.release())
                self._apply(uow, left, reservation.reference, commit=False)
                uow.commit()
            return reservation

        return _reading_afresh(attempt)

    @retry_transactions
    def expire_reservations(self, *, limit: int = 100) -> int:
        """Release active reservations past their expiry; returns how many were expired."""
        with self.store.unit_of_work() as uow:
            ids = uow.reservations.expired(self.clock(), limit=limit)
        count = 0
        for reservation_id in ids:
            try:
                with self.store.unit_of_work() as uow:
                    reservation = uow.reservations.get(reservation_id)
                    # re-checked: it may have been held or released since
                    if reservation is None or reservation.status is not ReservationStatus.ACTIVE:
                        continue
                    if reservation.expires_at is None or reservation.expires_at > self.clock():
                        continue
                    left = reservation.outstanding
                    reservation = uow.reservations.update(reservation.expire())
                    self._apply(uow, left, reservation.reference, commit=False)
                    uow.commit()
                    count += 1
            except ConcurrencyConflict:
                # its checkout held (or released) it between the read and the write: the
                # checkout won the race, and this reservation is no longer the sweep's
                log.info("reservation %s changed while expiring it; skipped", reservation_id)
        return count

    def _low_stock_events(
        self, before: Sequence[StockLevel], after: Sequence[StockLevel], at: datetime,
    ) -> list[DomainEvent]:
        threshold = self.low_stock_threshold
        if threshold is None:
            return []
        was, now = _levels_by_sku(before), _levels_by_sku(after)
        events = []
        for sku in sorted(now):
            available = sum(lv.available for lv in now[sku])
            if sum(lv.available for lv in was[sku]) > threshold >= available:
                events.append(_stock_event("stock.low", sku, now[sku], at, {
                    "available": available, "threshold": threshold}))
        return events

    def _live(self, uow: InventoryUnitOfWork, reservation_id: str) -> Reservation:
        reservation = uow.reservations.get(reservation_id)
        if reservation is None:
            raise NotFound("reservation", reservation_id)
        if not reservation.live:
            raise ReservationExpired(reservation_id, reservation.status)
        return reservation

    def _apply(self, uow: InventoryUnitOfWork, lines: Sequence[ReservationLine],
               reference: str, *, commit: bool, key: str | None = None) -> None:
        """Take reserved ``lines`` off ``reserved`` (and off ``on_hand`` on commit, with a
        ledger entry each, keyed ``<key>#<n>`` when a key is given)."""
        levels = {
            (lv.sku, lv.warehouse): lv
            for lv in uow.stock.lock(sorted({line.sku for line in lines}))
        }
        now = self.clock()
        for n, line in enumerate(lines):
            at = (line.sku, line.warehouse)
            level = levels[at]
            if commit:
                levels[at] = uow.stock.update(level.committed(line.quantity))
                uow.movements.append(StockMovement(
                    line.sku, line.warehouse, -line.quantity, "shipment", now, reference,
                    None if key is None else f"{key}#{n}"))
            else:
                levels[at] = uow.stock.update(level.with_reserved(-line.quantity))



def _take(reservation: Reservation, wanted: Mapping[str, int],
          warehouse: str | None) -> dict[tuple[str, str], int]:
    """Which of the reservation's lines ship ``wanted`` (SKU to units): from ``warehouse``
    only if given, else line by line in the reservation's order; `InvalidInput` naming each
    SKU of which fewer units are left."""
    shipped: dict[tuple[str, str], int] = {}
    errors = Errors()
    for sku, units in wanted.items():
        need = units
        for line in reservation.lines:
            if line.sku != sku or (warehouse is not None and line.warehouse != warehouse):
                continue
            taken = min(need, line.left)
            if taken:
                shipped[sku, line.warehouse] = shipped.get((sku, line.warehouse), 0) + taken
                need -= taken
        if need:
            where = f" in {warehouse}" if warehouse is not None else ""
            errors.add("lines", f"{units - need} units of {sku!r} left to ship{where}, "
                       f"not {units}")
    errors.raise_if_any("invalid shipment")
    return shipped


def _insert(add: Callable[[Any], None], row: Any) -> None:
    """``add(row)``, a `Conflict` (its key taken meanwhile) turned into `_RowTaken`, so
    that the unit of work is rolled back and runs again."""
    try:
        add(row)
    except Conflict as exc:
        raise _RowTaken from exc


T = TypeVar("T")


def _reading_afresh(attempt: Callable[[], T]) -> T:
    """Run ``attempt`` (one unit of work that reads, then writes under a version check)
    again when the write lost a race, so that it decides on what the row is now."""
    for _ in range(_RACES - 1):
        try:
            return attempt()
        except ConcurrencyConflict:
            continue
    return attempt()

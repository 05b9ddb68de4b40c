"""Inventory domain: products, warehouses, stock levels, reservations and the movement ledger."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

import attrs

from commerce_core.errors import InsufficientStock, InvalidTransition, Shortage, StockConflict
from commerce_core.money import Money

__all__ = [
    "LineRequest",
    "Product",
    "Reservation",
    "ReservationLine",
    "ReservationStatus",
    "StockLevel",
    "StockMovement",
    "Warehouse",
    "allocate",
]


@attrs.frozen
class Product:
    """A sellable item. ``price`` is the current list price; orders snapshot it."""

    sku: str
    name: str
    price: Money
    active: bool = True


@attrs.frozen
class Warehouse:
    """A place that holds stock."""

    code: str
    name: str


@attrs.frozen
class StockLevel:
    """Stock of one SKU in one warehouse. ``available = on_hand - reserved`` is never negative.

    ``version`` is the optimistic-concurrency counter the store checks on every update.
    """

    sku: str
    warehouse: str
    on_hand: int = 0
    reserved: int = 0
    version: int = 0

    def __attrs_post_init__(self) -> None:
        if self.reserved < 0 or self.on_hand < self.reserved:
            raise StockConflict(
                self.sku, self.warehouse,
                f"invalid level: on_hand={self.on_hand}, reserved={self.reserved}",
            )

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved

    def adjusted(self, delta: int) -> StockLevel:
        """``on_hand`` changed by ``delta``; refuses to go below zero or below what is reserved."""
        if self.on_hand + delta < self.reserved:
            raise StockConflict(
                self.sku, self.warehouse,
                f"on_hand {self.on_hand} + {delta} would drop below reserved {self.reserved}"
                if self.reserved else f"on_hand {self.on_hand} + {delta} would drop below 0",
            )
        return attrs.evolve(self, on_hand=self.on_hand + delta)

    def with_reserved(self, quantity: int) -> StockLevel:
        """``quantity`` more reserved (negative: released)."""
        return attrs.evolve(self, reserved=self.reserved + quantity)

    def committed(self, quantity: int) -> StockLevel:
        """A reserved ``quantity`` leaves the warehouse: both on_hand and reserved drop."""
        return attrs.evolve(
            self, on_hand=self.on_hand - quantity, reserved=self.reserved - quantity
        )


@attrs.frozen
class LineRequest:
    """A quantity of a SKU wanted, before it is allocated to warehouses."""

    sku: str
    quantity: int


@attrs.frozen
class ReservationLine:
    """A quantity of a SKU held in one warehouse; ``committed``: how many of its units have
    shipped already, in parts (`Reservation.commit_part`), while the reservation lives."""

    sku: str
    warehouse: str
    quantity: int
    committed: int = 0

    @property
    def left(self) -> int:
        """Units still held (not yet shipped)."""
        return self.quantity - self.committed


class ReservationStatus(enum.StrEnum):
    """``active`` expires at ``expires_at``; ``held`` (the order is confirmed) does not expire."""

    ACTIVE = "active"
    HELD = "held"
    COMMITTED = "committed"
    RELEASED = "released"
    EXPIRED = "expired"


_LIVE = frozenset({ReservationStatus.ACTIVE, ReservationStatus.HELD})


@attrs.frozen
class Reservation:
    """Stock set aside for one order, all lines or none."""

    id: str
    reference: str
    lines: tuple[ReservationLine, ...]
    status: ReservationStatus
    created_at: datetime
    expires_at: datetime | None
    version: int = 0

    @property
    def live(self) -> bool:
        """Still holding stock (active or held)."""
        return self.status in _LIVE

    def _to(self, status: ReservationStatus, allowed: Iterable[ReservationStatus]) -> Reservation:
        if self.status not in allowed:
            raise InvalidTransition("reservation", self.id, self.status, status)
        return attrs.evolve(self, status=status)

    def hold(self) -> Reservation:
        return attrs.evolve(self._to(ReservationStatus.HELD, _LIVE), expires_at=None)

    @property
    def outstanding(self) -> tuple[ReservationLine, ...]:
        """What the reservation still holds in stock: each line's units not yet shipped,
        while it is live (nothing once it is committed, released or expired)."""
        if not self.live:
            return ()
        return tuple(ReservationLine(line.sku, line.warehouse, line.left)
                     for line in self.lines if line.left > 0)

    def commit(self) -> Reservation:
        """All that is left ships (the lines keep what shipped in parts before)."""
        return self._to(ReservationStatus.COMMITTED, _LIVE)

    def commit_part(self, shipped: Mapping[tuple[str, str], int]) -> Reservation:
        """Units of some lines ship (``(sku, warehouse)`` to units, each at most what is
        left of it); committed when nothing is left. The caller checks the quantities."""
        if self.status is not ReservationStatus.HELD:
            raise InvalidTransition("reservation", self.id, self.status,
                                    ReservationStatus.COMMITTED)
        lines = []
        for line in self.lines:
            units = shipped.get((line.sku, line.warehouse), 0)
            if not 0 <= units <= line.left:
                raise ValueError(f"{units} units of {line.sku} in {line.warehouse}: "
                                 f"{line.left} left")
            lines.append(attrs.evolve(line, committed=line.committed + units))
        changed = attrs.evolve(self, lines=tuple(lines))
        if all(line.left == 0 for line in lines):
            return changed._to(ReservationStatus.COMMITTED, _LIVE)
        return changed

    def release(self) -> Reservation:
        return self._to(ReservationStatus.RELEASED, _LIVE)

    def expire(self) -> Reservation:
        return self._to(ReservationStatus.EXPIRED, {ReservationStatus.ACTIVE})


@attrs.frozen
class StockMovement:
    """One entry of the append-only ledger: ``on_hand`` of (sku, warehouse) changed by ``delta``.

    ``idempotency_key`` is the caller's key of the adjustment that wrote it, if one was given
    (unique in the store: the same adjustment is never written twice)."""

    sku: str
    warehouse: str
    delta: int
    reason: str
    at: datetime
    reference: str | None = None
    idempotency_key: str | None = None


def allocate(
    lines: Sequence[LineRequest], levels: Mapping[str, Sequence[StockLevel]]
) -> tuple[ReservationLine, ...]:
    """Decide which warehouses serve which lines, or raise `InsufficientStock` for all
    short lines at once.

    A line goes to the single warehouse with the most available stock when one can cover it
    (ties by warehouse code); otherwise it is split across warehouses, largest first.
    """
    allocated: list[ReservationLine] = []
    shortages: list[Shortage] = []
    for line in lines:
        candidates = sorted(
            (level for level in levels.get(line.sku, ()) if level.available > 0),
            key=lambda level: (-level.available, level.warehouse),
        )
        total = sum(level.available for level in candidates)
        if total < line.quantity:
            shortages.append(Shortage(line.sku, line.quantity, total))
            continue
        remaining = line.quantity
        for level in candidates:
            take = min(remaining, level.available)
            allocated.append(ReservationLine(line.sku, level.warehouse, take))
            remaining -= take
            if remaining == 0:
                break
    if shortages:
        raise InsufficientStock(shortages)
    return tuple(allocated)

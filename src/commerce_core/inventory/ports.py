"""The inventory store port: a unit of work over repositories, one transaction each."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Protocol

from commerce_core.events import OutboxRepository
from commerce_core.inventory.model import (
    Product,
    Reservation,
    StockLevel,
    StockMovement,
    Warehouse,
)
from commerce_core.unit_of_work import UnitOfWork

__all__ = [
    "InventoryStore",
    "InventoryUnitOfWork",
    "MovementRepository",
    "ProductRepository",
    "ReservationRepository",
    "StockRepository",
    "WarehouseRepository",
]


class ProductRepository(Protocol):
    def get(self, sku: str) -> Product | None:
        """The product, or None (SKUs compare exactly: case, accents, spaces)."""
    def get_many(self, skus: Collection[str]) -> dict[str, Product]:
        """The products among these SKUs that exist, by SKU (missing ones left out)."""
    def add(self, product: Product) -> None:
        """Insert; raises `Conflict` if the SKU exists."""
    def add_many(self, items: Sequence[Product]) -> None:
        """Insert several at once (a bulk insert where the store has one); raises `Conflict`
        if any SKU exists or one is given twice, and then adds none of them, even for a
        caller that catches it and commits (`commerce_core.kit.ProductBatchDefaults`)."""
    def update(self, product: Product) -> None:
        """Write a changed product (no version: the last write wins). A missing SKU is not
        created and nothing is written."""
    def list(self, *, active_only: bool, after: str | None, limit: int) -> Sequence[Product]:
        """Products ordered by SKU, strictly after ``after``, at most ``limit``."""


class WarehouseRepository(Protocol):
    def get(self, code: str) -> Warehouse | None:
        """The warehouse, or None."""
    def add(self, warehouse: Warehouse) -> None:
        """Insert; raises `Conflict` if the code exists (the stored one stays as it was)."""
    def update(self, warehouse: Warehouse) -> None:
        """Write a changed warehouse; a missing code is not created, nothing is written."""
    def list(self) -> Sequence[Warehouse]:
        """Every warehouse, ordered by code."""


class StockRepository(Protocol):
    def lock(self, skus: Collection[str]) -> Sequence[StockLevel]:
        """Every level of these SKUs, locked until the unit of work ends.

        Locks are taken in (sku, warehouse) order so that concurrent units of work never
        deadlock; a store without row locks must serialise writers instead.
        """
    def levels(self, skus: Collection[str]) -> Sequence[StockLevel]:
        """Every level of these SKUs, without locking, ordered by (sku, warehouse); a SKU
        without levels is left out."""
    def add(self, level: StockLevel) -> None:
        """Insert; raises `Conflict` if that (sku, warehouse) has a level already."""
    def update(self, level: StockLevel) -> StockLevel:
        """Write a changed level if its ``version`` is still the stored one; return it with the
        next version, or raise `ConcurrencyConflict` (a level that does not exist too)."""
    def update_many(self, levels: Sequence[StockLevel]) -> list[StockLevel]:
        """`update()` for several levels at once (one batch where the store can): all of them
        with their next versions, or `ConcurrencyConflict` if any was changed meanwhile."""
    def low(self, threshold: int, *, limit: int) -> Sequence[tuple[str, int]]:
        """(sku, available summed over warehouses) for active products at or below
        ``threshold`` (one without levels counts 0), ordered by SKU, at most ``limit``."""


class ReservationRepository(Protocol):
    def get(self, reservation_id: str) -> Reservation | None:
        """The reservation with its lines (in the order given), or None."""
    def add(self, reservation: Reservation) -> None:
        """Insert; raises `Conflict` if the id is taken."""
    def update(self, reservation: Reservation) -> Reservation:
        """Optimistic like `update()`."""
    def expired(self, now: datetime, *, limit: int) -> Sequence[str]:
        """Ids of active reservations whose ``expires_at`` is at or before ``now``, by
        ``expires_at`` then id, at most ``limit``."""
    def live(self) -> Sequence[Reservation]:
        """Every active or held reservation, ordered by id (for audits and invariant checks)."""

    # Optional: ``mark_held(reservation_id) -> bool``. An active reservation made held (its
    # ``expires_at`` cleared, its version raised) in one write guarded by its status, without
    # reading it first; true if it was active, false if not (missing, held already, no longer
    # live: nothing written). `InventoryService.place_hold` uses it where a store has it (the
    # checkout's hold: one statement); without it, the reservation is read, then updated.


class MovementRepository(Protocol):
    def append(self, movement: StockMovement) -> None:
        """Add to the ledger; raises `Conflict` if its ``idempotency_key`` is taken."""
    def by_key(self, idempotency_key: str) -> StockMovement | None:
        """The movement written under this idempotency key, if any."""
    def list(self, sku: str, *, limit: int) -> Sequence[StockMovement]:
        """The movements of a SKU, the last appended first, at most ``limit``."""
    def sums(self) -> dict[tuple[str, str], int]:
        """The ledger summed per (sku, warehouse): must equal each level's ``on_hand``."""


class InventoryUnitOfWork(UnitOfWork, Protocol):
    """One transaction on the inventory store, with its repositories."""

    @property
    def products(self) -> ProductRepository: ...
    @property
    def warehouses(self) -> WarehouseRepository: ...
    @property
    def stock(self) -> StockRepository: ...
    @property
    def reservations(self) -> ReservationRepository: ...
    @property
    def movements(self) -> MovementRepository: ...
    @property
    def outbox(self) -> OutboxRepository: ...


class InventoryStore(Protocol):
    """The inventory database."""

    def unit_of_work(self) -> InventoryUnitOfWork: ...
    def close(self) -> None: ...

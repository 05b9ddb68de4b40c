"""The inventory store on SQLAlchemy Core: its own MetaData, engine and tables."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from commerce_core.errors import Conflict
from commerce_core.inventory import (
    Product,
    Reservation,
    ReservationLine,
    ReservationStatus,
    StockLevel,
    StockMovement,
    Warehouse,
)
from commerce_core.money import Money
from commerce_core_sqlalchemy._base import (
    Key,
    UnitOfWork,
    UTCDateTime,
    inserting,
    store_from_url,
)
from commerce_core_sqlalchemy._outbox import SqlAlchemyOutbox, outbox_tables
from commerce_core_sqlalchemy._prepared import prepared
from commerce_core_sqlalchemy.migrations import ensure_schema

__all__ = ["SqlAlchemyInventoryStore", "metadata"]

metadata = sa.MetaData()

products = sa.Table(
    "products", metadata,
    sa.Column("sku", Key(64), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("price_amount", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("active", sa.Boolean, nullable=False),
)

warehouses = sa.Table(
    "warehouses", metadata,
    sa.Column("code", Key(64), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
)

stock_levels = sa.Table(
    "stock_levels", metadata,
    sa.Column("sku", Key(64), sa.ForeignKey("products.sku"), primary_key=True),
    sa.Column("warehouse", Key(64), sa.ForeignKey("warehouses.code"), primary_key=True),
    sa.Column("on_hand", sa.BigInteger, nullable=False),
    sa.Column("reserved", sa.BigInteger, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    # the last line of defence against oversell, whatever the code above does
    sa.CheckConstraint("reserved >= 0 AND on_hand >= reserved", name="ck_stock_levels_available"),
)

reservations = sa.Table(
    "reservations", metadata,
    sa.Column("id", Key(100), primary_key=True),
    sa.Column("reference", Key(100), nullable=False, index=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Index("ix_reservations_status_expires_at", "status", "expires_at"),
)

reservation_lines = sa.Table(
    "reservation_lines", metadata,
    sa.Column("reservation_id", Key(100), sa.ForeignKey("reservations.id"),
              primary_key=True),
    sa.Column("position", sa.Integer, primary_key=True),
    sa.Column("sku", Key(64), nullable=False),
    sa.Column("warehouse", Key(64), nullable=False),
    sa.Column("quantity", sa.BigInteger, nullable=False),
    # units of the line shipped in parts while the reservation lives
    sa.Column("committed", sa.BigInteger, nullable=False, server_default="0"),
)

stock_movements = sa.Table(
    "stock_movements", metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True,
              autoincrement=True),
    sa.Column("sku", Key(64), nullable=False),
    sa.Column("warehouse", Key(64), nullable=False),
    sa.Column("delta", sa.BigInteger, nullable=False),
    sa.Column("reason", sa.String(200), nullable=False),
    sa.Column("reference", Key(100), nullable=True),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("idempotency_key", Key(255), nullable=True),
    sa.Index("ix_stock_movements_sku_id", "sku", "id"),
    # one adjustment per key; NULLs (no key) are never equal to each other
    sa.UniqueConstraint("idempotency_key", name="uq_stock_movements_idempotency_key"),
)

outbox = outbox_tables(metadata)

# the statements of the hot paths, built once
# (`prepared`: run on the driver's cursor, compiled once per dialect)
_LEVELS = prepared(sa.select(stock_levels)
                   .where(stock_levels.c.sku.in_(sa.bindparam("skus", expanding=True)))
                   .order_by(stock_levels.c.sku, stock_levels.c.warehouse))
# rows are locked in (sku, warehouse) order
_LOCK_LEVELS = prepared(_LEVELS.with_for_update())
_PRODUCTS = prepared(sa.select(products)
                     .where(products.c.sku.in_(sa.bindparam("skus", expanding=True))))
#: `_Products.add_many` runs in a savepoint of its own
_SAVEPOINT = sa.text("SAVEPOINT add_many")
_ROLLBACK_TO_SAVEPOINT = sa.text("ROLLBACK TO SAVEPOINT add_many")
_RELEASE_SAVEPOINT = sa.text("RELEASE SAVEPOINT add_many")


def _product(row: Any) -> Product:
    return Product(row.sku, row.name, Money(row.price_amount, row.currency), bool(row.active))


def _product_values(product: Product) -> dict[str, Any]:
    return {"sku": product.sku, "name": product.name, "price_amount": product.price.amount,
            "currency": product.price.currency, "active": product.active}


def _movement(row: Any) -> StockMovement:
    return StockMovement(row.sku, row.warehouse, row.delta, row.reason, row.at, row.reference,
                         row.idempotency_key)


def _level(row: Any) -> StockLevel:
    return StockLevel(row.sku, row.warehouse, row.on_hand, row.reserved, row.version)


class _Repository:
    def __init__(self, uow: UnitOfWork) -> None:
        self.uow = uow


class _Products(_Repository):
    def get(self, sku: str) -> Product | None:
        row = self.uow.execute(sa.select(products).where(products.c.sku == sku)).first()
        return None if row is None else _product(row)

    def get_many(self, skus: Collection[str]) -> dict[str, Product]:
        rows = self.uow.execute(_PRODUCTS, {"skus": list(skus)})
        return {row.sku: _product(row) for row in rows}

    def add(self, product: Product) -> None:
        self.uow.execute(inserting(products), _product_values(product))

    def add_many(self, items: Sequence[Product]) -> None:
        # one executemany: batched into multi-row INSERTs by SQLAlchemy where the driver can;
        # in a savepoint, so that a taken SKU adds none of them (sqlite3 inserts row by row,
        # PyMySQL splits a long batch) even for a caller that catches the Conflict and commits
        if not items:
            return
        self.uow.execute(_SAVEPOINT)
        try:
            self.uow.execute(inserting(products), [_product_values(p) for p in items])
        except Conflict:
            self.uow.execute(_ROLLBACK_TO_SAVEPOINT)
            self.uow.execute(_RELEASE_SAVEPOINT)
            raise
        self.uow.execute(_RELEASE_SAVEPOINT)

    def update(self, product: Product) -> None:
        values = _product_values(product)
        del values["sku"]
        self.uow.execute(sa.update(products).where(products.c.sku == product.sku), values)

    def list(self, *, active_only: bool, after: str | None, limit: int) -> Sequence[Product]:
        query = sa.select(products).order_by(products.c.sku).limit(limit)
        if active_only:
            query = query.where(products.c.active.is_(True))
        if after is not None:
            query = query.where(products.c.sku > after)
        return [_product(row) for row in self.uow.execute(query)]


class _Warehouses(_Repository):
    def get(self, code: str) -> Warehouse | None:
        row = self.uow.execute(sa.select(warehouses).where(warehouses.c.code == code)).first()
        return None if row is None else Warehouse(row.code, row.name)

    def add(self, warehouse: Warehouse) -> None:
        self.uow.execute(inserting(warehouses), {"code": warehouse.code, "name": warehouse.name})

    def update(self, warehouse: Warehouse) -> None:
        self.uow.execute(sa.update(warehouses).where(warehouses.c.code == warehouse.code),
                         {"name": warehouse.name})

    def list(self) -> Sequence[Warehouse]:
        rows = self.uow.execute(sa.select(warehouses).order_by(warehouses.c.code))
        return [Warehouse(row.code, row.name) for row in rows]


class _Stock(_Repository):
    def lock(self, skus: Collection[str]) -> Sequence[StockLevel]:
        # FOR UPDATE: the rows locked on a server database; SQLite, which has no such clause,
        # takes its write lock before the read (the unit of work begins at a locking read)
        return [_level(row) for row in self.uow.execute(_LOCK_LEVELS, {"skus": sorted(set(skus))})]

    def levels(self, skus: Collection[str]) -> Sequence[StockLevel]:
        return [_level(row) for row in self.uow.execute(_LEVELS, {"skus": sorted(set(skus))})]

    def add(self, level: StockLevel) -> None:
        self.uow.execute(inserting(stock_levels), {
            "sku": level.sku, "warehouse": level.warehouse, "on_hand": level.on_hand,
            "reserved": level.reserved, "version": level.version,
        })

    def update(self, level: StockLevel) -> StockLevel:
        return self.uow.update_versioned(
            stock_levels, level, key={"sku": level.sku, "warehouse": level.warehouse},
            values={"on_hand": level.on_hand, "reserved": level.reserved}, kind="stock level",
        )

    def update_many(self, levels: Sequence[StockLevel]) -> list[StockLevel]:
        if not self.uow.sane_multi_rowcount:
            return [self.update(level) for level in levels]
        return self.uow.update_versioned_many(
            stock_levels, levels, keys=("sku", "warehouse"),
            values=("on_hand", "reserved"), kind="stock level",
        )

    def low(self, threshold: int, *, limit: int) -> Sequence[tuple[str, int]]:
        available = sa.func.coalesce(
            sa.func.sum(stock_levels.c.on_hand - stock_levels.c.reserved), 0
        )
        query = (
            sa.select(products.c.sku, available.label("available"))
            .select_from(products.outerjoin(stock_levels, stock_levels.c.sku == products.c.sku))
            .where(products.c.active.is_(True))
            .group_by(products.c.sku)
            .having(available <= threshold)
            .order_by(products.c.sku)
            .limit(limit)
        )
        return [(row.sku, int(row.available)) for row in self.uow.execute(query)]


_GET_RESERVATION = prepared(
    sa.select(reservations, reservation_lines.c.sku, reservation_lines.c.warehouse,
              reservation_lines.c.quantity, reservation_lines.c.committed)
    .outerjoin(reservation_lines, reservation_lines.c.reservation_id == reservations.c.id)
    .where(reservations.c.id == sa.bindparam("id"))
    .order_by(reservation_lines.c.position)
)


#: An active reservation held in one guarded write (`_Reservations.mark_held`)
_MARK_HELD = prepared(
    sa.update(reservations)
    .where(reservations.c.id == sa.bindparam("k_id"),
           reservations.c.status == ReservationStatus.ACTIVE.value)
    .values(status=ReservationStatus.HELD.value, expires_at=None,
            version=reservations.c.version + 1))


_UPDATE_COMMITTED = (
    sa.update(reservation_lines)
    .where(reservation_lines.c.reservation_id == sa.bindparam("rid"),
           reservation_lines.c.position == sa.bindparam("pos"))
    .values(committed=sa.bindparam("committed"))
)


class _Reservations(_Repository):
    def _load(self, rows: Sequence[Any]) -> list[Reservation]:
        if not rows:
            return []
        ids = [row.id for row in rows]
        lines: dict[str, list[ReservationLine]] = {i: [] for i in ids}
        for line in self.uow.execute(
            sa.select(reservation_lines).where(reservation_lines.c.reservation_id.in_(ids))
            .order_by(reservation_lines.c.reservation_id, reservation_lines.c.position)
        ):
            lines[line.reservation_id].append(
                ReservationLine(line.sku, line.warehouse, line.quantity, line.committed))
        return [
            Reservation(row.id, row.reference, tuple(lines[row.id]),
                        ReservationStatus(row.status), row.created_at, row.expires_at,
                        row.version)
            for row in rows
        ]

    def get(self, reservation_id: str) -> Reservation | None:
        # one round trip: the reservation joined to its lines
        rows = self.uow.execute(_GET_RESERVATION, {"id": reservation_id}).all()
        if not rows:
            return None
        row = rows[0]
        lines = tuple(ReservationLine(r.sku, r.warehouse, r.quantity, r.committed)
                      for r in rows if r.sku is not None)
        return Reservation(row.id, row.reference, lines, ReservationStatus(row.status),
                           row.created_at, row.expires_at, row.version)

    def add(self, reservation: Reservation) -> None:
        self.uow.execute(inserting(reservations), {
            "id": reservation.id, "reference": reservation.reference,
            "status": reservation.status.value, "created_at": reservation.created_at,
            "expires_at": reservation.expires_at, "version": reservation.version,
        })
        self.uow.execute(inserting(reservation_lines), [
            {"reservation_id": reservation.id, "position": i, "sku": line.sku,
             "warehouse": line.warehouse, "quantity": line.quantity,
             "committed": line.committed}
            for i, line in enumerate(reservation.lines)
        ])

    def update(self, reservation: Reservation) -> Reservation:
        updated = self.uow.update_versioned(
            reservations, reservation, key={"id": reservation.id},
            values={"status": reservation.status.value, "expires_at": reservation.expires_at},
            kind="reservation",
        )
        if any(line.committed for line in reservation.lines):
            # shipped in parts (a line's committed units only ever grow: none shipped, none
            # to write, which keeps the checkout's hold and the whole shipment one statement)
            self.uow.execute(_UPDATE_COMMITTED, [
                {"rid": reservation.id, "pos": i, "committed": line.committed}
                for i, line in enumerate(reservation.lines)])
        return updated

    def mark_held(self, reservation_id: str) -> bool:
        """Hold an active reservation in one write, guarded by its status (see the port)."""
        return bool(self.uow.execute(_MARK_HELD, {"k_id": reservation_id}).rowcount == 1)

    def expired(self, now: datetime, *, limit: int) -> Sequence[str]:
        query = (
            sa.select(reservations.c.id)
            .where(reservations.c.status == ReservationStatus.ACTIVE.value,
                   reservations.c.expires_at <= now)
            .order_by(reservations.c.expires_at, reservations.c.id)
            .limit(limit)
        )
        return [row.id for row in self.uow.execute(query)]

    def live(self) -> Sequence[Reservation]:
        rows = self.uow.execute(
            sa.select(reservations)
            .where(reservations.c.status.in_([ReservationStatus.ACTIVE.value,
                                              ReservationStatus.HELD.value]))
            .order_by(reservations.c.id)).all()
        return self._load(rows)


class _Movements(_Repository):
    def append(self, movement: StockMovement) -> None:
        self.uow.execute(inserting(stock_movements), {
            "sku": movement.sku, "warehouse": movement.warehouse, "delta": movement.delta,
            "reason": movement.reason, "reference": movement.reference, "at": movement.at,
            "idempotency_key": movement.idempotency_key,
        })

    def by_key(self, idempotency_key: str) -> StockMovement | None:
        row = self.uow.execute(sa.select(stock_movements).where(
            stock_movements.c.idempotency_key == idempotency_key)).first()
        return None if row is None else _movement(row)

    def list(self, sku: str, *, limit: int) -> Sequence[StockMovement]:
        rows = self.uow.execute(
            sa.select(stock_movements).where(stock_movements.c.sku == sku)
            .order_by(stock_movements.c.id.desc()).limit(limit))
        return [_movement(r) for r in rows]

    def sums(self) -> dict[tuple[str, str], int]:
        rows = self.uow.execute(
            sa.select(stock_movements.c.sku, stock_movements.c.warehouse,
                      sa.func.sum(stock_movements.c.delta).label("total"))
            .group_by(stock_movements.c.sku, stock_movements.c.warehouse))
        return {(row.sku, row.warehouse): int(row.total) for row in rows}


class _InventoryUnitOfWork(UnitOfWork):
    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        self.products = _Products(self)
        self.warehouses = _Warehouses(self)
        self.stock = _Stock(self)
        self.reservations = _Reservations(self)
        self.movements = _Movements(self)
        self.outbox = SqlAlchemyOutbox(self, outbox)


class SqlAlchemyInventoryStore:
    """The inventory database on any SQLAlchemy engine (``sqlite:///...``, ``postgresql://``,
    ``mysql+pymysql://``). ``create_schema`` migrates the database to the newest
    revision on open (Alembic; nothing to do when it is there)."""

    def __init__(self, engine: Engine, *, create_schema: bool = True) -> None:
        self.engine = engine
        if create_schema:
            ensure_schema(engine, "inventory")

    @classmethod
    def from_url(cls, url: str) -> SqlAlchemyInventoryStore:
        """The store of the database at ``url``, migrated; `StoreError` saying what is
        wrong if that database cannot be reached, does not exist or refuses the user."""
        return store_from_url(cls, url)

    def unit_of_work(self) -> _InventoryUnitOfWork:
        return _InventoryUnitOfWork(self.engine)

    def close(self) -> None:
        self.engine.dispose()

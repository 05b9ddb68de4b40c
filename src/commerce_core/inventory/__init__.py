"""The inventory context: products, warehouses, stock levels, reservations, the ledger."""

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
from commerce_core.inventory.ports import (
    InventoryStore,
    InventoryUnitOfWork,
    MovementRepository,
    ProductRepository,
    ReservationRepository,
    StockRepository,
    WarehouseRepository,
)
from commerce_core.inventory.services import (
    ImportReport,
    InventoryService,
    ReservationExpired,
    StockSummary,
)

__all__ = [
    "ImportReport",
    "InventoryService",
    "InventoryStore",
    "InventoryUnitOfWork",
    "LineRequest",
    "MovementRepository",
    "Product",
    "ProductRepository",
    "Reservation",
    "ReservationExpired",
    "ReservationLine",
    "ReservationRepository",
    "ReservationStatus",
    "StockLevel",
    "StockMovement",
    "StockRepository",
    "StockSummary",
    "Warehouse",
    "WarehouseRepository",
    "allocate",
]

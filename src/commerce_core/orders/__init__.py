"""The orders context: the order aggregate, its status machine, history, shipments and returns."""

from commerce_core.orders.model import (
    Address,
    Adjustment,
    AdjustmentKind,
    IdempotencyRecord,
    Order,
    OrderLine,
    OrderStatus,
    Return,
    ReturnLine,
    ReturnStatus,
    SagaStep,
    Shipment,
    ShipmentLine,
    StatusChange,
    Tax,
)
from commerce_core.orders.ports import (
    IdempotencyRepository,
    OrderRepository,
    OrderStore,
    OrderUnitOfWork,
    PaymentRepository,
    RedemptionRepository,
)
from commerce_core.orders.services import OrderService

__all__ = [
    "Address",
    "Adjustment",
    "AdjustmentKind",
    "IdempotencyRecord",
    "IdempotencyRepository",
    "Order",
    "OrderLine",
    "OrderRepository",
    "OrderService",
    "OrderStatus",
    "OrderStore",
    "OrderUnitOfWork",
    "PaymentRepository",
    "RedemptionRepository",
    "Return",
    "ReturnLine",
    "ReturnStatus",
    "SagaStep",
    "Shipment",
    "ShipmentLine",
    "StatusChange",
    "Tax",
]

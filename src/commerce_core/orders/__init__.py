"""The orders context: the order aggregate, its status machine, history and shipment."""

from commerce_core.orders.model import (
    Address,
    IdempotencyRecord,
    Order,
    OrderLine,
    OrderStatus,
    SagaStep,
    Shipment,
    StatusChange,
)
from commerce_core.orders.ports import (
    IdempotencyRepository,
    OrderRepository,
    OrderStore,
    OrderUnitOfWork,
    PaymentRepository,
)
from commerce_core.orders.services import OrderService

__all__ = [
    "Address",
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
    "SagaStep",
    "Shipment",
    "StatusChange",
]

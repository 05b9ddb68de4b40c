"""commerce-core: order processing, inventory and payments behind ports, with a checkout saga
across separate stores."""

from commerce_core._validate import FORBIDDEN_CHARACTERS
from commerce_core.checkout import Checkout, OrderItem, PlaceOrder, RecoveryReport
from commerce_core.errors import (
    AdapterNotInstalled,
    CommerceError,
    ConcurrencyConflict,
    Conflict,
    CurrencyMismatch,
    FieldError,
    IdempotencyKeyInUse,
    IdempotencyKeyReused,
    InsufficientStock,
    InvalidInput,
    InvalidNotification,
    InvalidSignature,
    InvalidTransition,
    NotFound,
    PaymentDeclined,
    PaymentError,
    PaymentUnavailable,
    RefundExceedsCaptured,
    Shortage,
    StockConflict,
    StoreError,
    TooManyOpenOrders,
    TransientStoreError,
)
from commerce_core.inventory import Product, StockLevel, Warehouse
from commerce_core.money import Money
from commerce_core.orders import Address, Order, OrderLine, OrderStatus, Shipment
from commerce_core.pagination import Page
from commerce_core.payments import Payment, PaymentStatus
from commerce_core.platform import Platform
from commerce_core.retry import RetryPolicy

__version__ = "0.1.0"

__all__ = [
    "FORBIDDEN_CHARACTERS",
    "AdapterNotInstalled",
    "Address",
    "Checkout",
    "CommerceError",
    "ConcurrencyConflict",
    "Conflict",
    "CurrencyMismatch",
    "FieldError",
    "IdempotencyKeyInUse",
    "IdempotencyKeyReused",
    "InsufficientStock",
    "InvalidInput",
    "InvalidNotification",
    "InvalidSignature",
    "InvalidTransition",
    "Money",
    "NotFound",
    "Order",
    "OrderItem",
    "OrderLine",
    "OrderStatus",
    "Page",
    "Payment",
    "PaymentDeclined",
    "PaymentError",
    "PaymentStatus",
    "PaymentUnavailable",
    "PlaceOrder",
    "Platform",
    "Product",
    "RecoveryReport",
    "RefundExceedsCaptured",
    "RetryPolicy",
    "Shipment",
    "Shortage",
    "StockConflict",
    "StockLevel",
    "StoreError",
    "TooManyOpenOrders",
    "TransientStoreError",
    "Warehouse",
]

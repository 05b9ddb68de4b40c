"""The checkout: the saga that spans the order store, the inventory store and the provider."""

from commerce_core.checkout.commands import (
    CheckoutLimits,
    OrderItem,
    PlaceOrder,
    check_idempotency_key,
)
from commerce_core.checkout.saga import (
    Checkout,
    CheckoutFailed,
    NotificationOutcome,
    RecoveryFailure,
    RecoveryReport,
    StepHook,
)

__all__ = [
    "Checkout",
    "CheckoutFailed",
    "CheckoutLimits",
    "NotificationOutcome",
    "OrderItem",
    "PlaceOrder",
    "RecoveryFailure",
    "RecoveryReport",
    "StepHook",
    "check_idempotency_key",
]

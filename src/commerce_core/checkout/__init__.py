"""The checkout: the saga that spans the order store, the inventory store and the provider."""

from commerce_core.checkout.commands import (
    CheckoutLimits,
    OrderItem,
    PlaceOrder,
    QuoteOrder,
    check_idempotency_key,
)
from commerce_core.checkout.saga import (
    Checkout,
    CheckoutFailed,
    NotificationOutcome,
    Quote,
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
    "Quote",
    "QuoteOrder",
    "RecoveryFailure",
    "RecoveryReport",
    "StepHook",
    "check_idempotency_key",
]

"""The checkout: the saga that spans the order store, the inventory store and the provider."""

from commerce_core.checkout.commands import OrderItem, PlaceOrder
from commerce_core.checkout.saga import Checkout, CheckoutFailed, RecoveryReport, StepHook

__all__ = ["Checkout", "CheckoutFailed", "OrderItem", "PlaceOrder", "RecoveryReport", "StepHook"]

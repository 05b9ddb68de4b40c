"""The payments context: authorization, capture, void and refunds behind a gateway port."""

from commerce_core.payments.model import (
    NotificationKind,
    Payment,
    PaymentEvent,
    PaymentNotification,
    PaymentStatus,
    PendingRefund,
    ProviderRefund,
)
from commerce_core.payments.ports import (
    ALREADY_CAPTURED,
    AUTHORIZATION_EXPIRED,
    DelayedLookup,
    GatewayAuthorization,
    PaymentGateway,
    RefundLookup,
)
from commerce_core.payments.services import PaymentService

__all__ = [
    "ALREADY_CAPTURED",
    "AUTHORIZATION_EXPIRED",
    "DelayedLookup",
    "GatewayAuthorization",
    "NotificationKind",
    "Payment",
    "PaymentEvent",
    "PaymentGateway",
    "PaymentNotification",
    "PaymentService",
    "PaymentStatus",
    "PendingRefund",
    "ProviderRefund",
    "RefundLookup",
]

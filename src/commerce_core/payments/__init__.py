"""The payments context: authorization, capture, void and refunds behind a gateway port."""

from commerce_core.payments.model import (
    NotificationKind,
    Payment,
    PaymentEvent,
    PaymentNotification,
    PaymentStatus,
    PendingRefund,
)
from commerce_core.payments.ports import GatewayAuthorization, PaymentGateway
from commerce_core.payments.services import PaymentService

__all__ = [
    "GatewayAuthorization",
    "NotificationKind",
    "Payment",
    "PaymentEvent",
    "PaymentGateway",
    "PaymentNotification",
    "PaymentService",
    "PaymentStatus",
    "PendingRefund",
]

"""Outbound webhooks: the platform's events POSTed, signed, to endpoints an admin manages.

    webhooks = WebhookService(InMemoryWebhookStore())   # or the order store's (SQLAlchemy)
    webhooks.put_endpoint("erp", url="https://erp.example/hooks", secret=secret,
                          events=["order.confirmed", "return.*"])
    BackgroundRunner(platform, webhooks=webhooks).start()   # queues events, sends them

A receiver checks each request with `verify` (``Commerce-Signature: t=…,v1=…``) and
deduplicates by the event's ``id``.
"""

from commerce_core.webhooks.memory import InMemoryWebhookStore
from commerce_core.webhooks.model import (
    EVENT_TYPES,
    SIGNATURE_HEADER,
    Delivery,
    DeliveryStatus,
    WebhookEndpoint,
    body_of,
    sign,
    verify,
)
from commerce_core.webhooks.ports import DeliveryFailed, WebhookStore, WebhookTransport
from commerce_core.webhooks.service import DeliveryReport, WebhookPolicy, WebhookService
from commerce_core.webhooks.transport import HttpTransport

__all__ = [
    "EVENT_TYPES",
    "SIGNATURE_HEADER",
    "Delivery",
    "DeliveryFailed",
    "DeliveryReport",
    "DeliveryStatus",
    "HttpTransport",
    "InMemoryWebhookStore",
    "WebhookEndpoint",
    "WebhookPolicy",
    "WebhookService",
    "WebhookStore",
    "WebhookTransport",
    "body_of",
    "sign",
    "verify",
]

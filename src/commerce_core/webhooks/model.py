"""Outbound webhooks: endpoints, the deliveries queued for them, and their signatures."""

from __future__ import annotations

import enum
import fnmatch
import hashlib
import hmac
import json
from collections.abc import Mapping
from datetime import datetime

import attrs

from commerce_core.errors import InvalidSignature
from commerce_core.events import DomainEvent

__all__ = [
    "EVENT_TYPES",
    "SIGNATURE_HEADER",
    "Delivery",
    "DeliveryStatus",
    "WebhookEndpoint",
    "body_of",
    "sign",
    "verify",
]

#: Every event type the platform writes (``docs/architecture.md``, "Events"): what an
#: endpoint's ``events`` may name, besides ``"*"`` and ``"<kind>.*"``.
EVENT_TYPES = (
    "order.placed", "order.confirmed", "order.failed", "order.cancelled",
    "order.rest_cancelled", "order.partially_shipped", "order.shipped", "order.delivered",
    "order.refunded", "order.metadata_changed", "payment.captured",
    "return.requested", "return.received", "return.refunded", "return.rejected",
    "stock.adjusted", "stock.low",
)

#: The header that carries a delivery's signature.
SIGNATURE_HEADER = "Commerce-Signature"


class DeliveryStatus(enum.StrEnum):
    PENDING = "pending"  #: queued, or waiting for its next attempt
    DELIVERED = "delivered"  #: the endpoint answered 2xx
    FAILED = "failed"  #: every attempt failed: a dead letter, until it is replayed


@attrs.frozen(kw_only=True)
class WebhookEndpoint:
    """Where events go: ``url`` gets every event whose type matches one of ``events``
    (``"order.confirmed"``, ``"order.*"``, ``"*"``), signed with ``secret``. An endpoint
    that is not ``active`` is paused: no event is queued for it, and what was queued waits."""

    id: str
    url: str
    secret: str = attrs.field(repr=False)
    events: tuple[str, ...]
    active: bool = True
    created_at: datetime
    updated_at: datetime

    def wants(self, event_type: str) -> bool:
        return self.active and any(fnmatch.fnmatchcase(event_type, pattern)
                                   for pattern in self.events)


@attrs.frozen(kw_only=True)
class Delivery:
    """One event for one endpoint: its place in the endpoint's queue and its log line.

    ``body`` is the JSON sent (the same bytes at every attempt; the signature is made anew
    for each). ``aggregate`` (``"order:ord_…"``) orders the queue: an event is sent only once
    every earlier event of its aggregate for this endpoint is delivered or failed for good.
    ``position`` is given by the store (the order of queueing). ``trace``: the event's
    trace context (`DomainEvent.trace`), sent as the ``traceparent`` and ``tracestate``
    headers so that the receiver continues the trace."""

    id: str
    endpoint_id: str
    event_id: str
    event_type: str
    aggregate: str
    body: str
    created_at: datetime
    status: DeliveryStatus = DeliveryStatus.PENDING
    attempts: int = 0
    next_attempt_at: datetime
    last_attempt_at: datetime | None = None
    response_status: int | None = None
    last_error: str | None = None
    delivered_at: datetime | None = None
    position: int = 0
    trace: Mapping[str, str] = attrs.field(factory=dict)


def body_of(event: DomainEvent) -> str:
    """The JSON an endpoint receives: ``{"id", "type", "occurred_at", "data"}``."""
    return json.dumps({"id": event.id, "type": event.type,
                       "occurred_at": event.occurred_at.isoformat(),
                       "data": dict(event.payload)}, separators=(",", ":"), ensure_ascii=False)


def _mac(secret: str, timestamp: int, body: bytes) -> str:
    signed = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The ``Commerce-Signature`` header's value: ``t=<unix seconds>,v1=<hex HMAC-SHA256 of
    "<t>.<body>" keyed by the secret>``."""
    return f"t={timestamp},v1={_mac(secret, timestamp, body)}"


def verify(secret: str, body: bytes, header: str | None, *, now: float,
           tolerance: float = 300) -> None:
    """For a receiver: check a ``Commerce-Signature`` header against the raw body, or raise
    `InvalidSignature` (missing or malformed, no ``v1`` that matches, or a timestamp more
    than ``tolerance`` seconds from ``now``: a replayed request). Several ``v1`` values are
    accepted (one per secret while a secret is being rotated)."""
    if not header or len(header) > 2000:
        raise InvalidSignature("no Commerce-Signature header")
    parts: dict[str, list[str]] = {}
    for item in header.split(","):
        key, sep, value = item.strip().partition("=")
        if sep:
            parts.setdefault(key, []).append(value)
    stamps = parts.get("t", [])
    if len(stamps) != 1 or not stamps[0].isascii() or not stamps[0].isdigit() \
            or len(stamps[0]) > 12:
        raise InvalidSignature("the signature has no timestamp")
    timestamp = int(stamps[0])
    if abs(now - timestamp) > tolerance:
        raise InvalidSignature("the signature's timestamp is too old or in the future")
    expected = _mac(secret, timestamp, body)
    if not any(hmac.compare_digest(expected, given) for given in parts.get("v1", [])
               if given.isascii()):
        raise InvalidSignature("the signature does not match")


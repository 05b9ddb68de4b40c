"""Stripe's webhooks: signature verified, then translated into the port's terms."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping, Sequence
from typing import Any

import stripe
from commerce_core.errors import FieldError, InvalidInput, InvalidNotification, InvalidSignature
from commerce_core.money import MAX_AMOUNT, Money
from commerce_core.payments.model import NotificationKind, PaymentNotification
from commerce_core_stripe.gateway import KEY_FIELD, REFERENCE_FIELD

__all__ = ["StripeWebhooks"]

#: PaymentIntent events and what they mean for us; a refund's own event (``refund.created``)
#: is read apart; other event types are acknowledged and ignored (captures and our own
#: refunds are driven, and recorded, by the saga itself).
_KINDS = {
    "payment_intent.amount_capturable_updated": NotificationKind.AUTHORIZED,
    "payment_intent.succeeded": NotificationKind.CAPTURED,
    "payment_intent.payment_failed": NotificationKind.DECLINED,
    "payment_intent.canceled": NotificationKind.VOIDED,
}

_CURRENCY = re.compile(r"[A-Za-z]{3}")


class StripeWebhooks:
    """Verifies ``Stripe-Signature`` (HMAC-SHA256 over ``"<timestamp>.<body>"``, compared
    in constant time by the official library) against each configured secret in turn, so
    that two secrets work while one is being rotated, and refuses events signed longer ago
    than ``tolerance`` seconds (a replayed capture of an old request), or further ahead than
    that (a clock that cannot be trusted). A signed event of a shape Stripe never sends (a
    field missing or of the wrong type) is refused too (`InvalidNotification`): nothing
    changes, and the sender is told, rather than answered with an error it would retry."""

    provider = "stripe"

    def __init__(self, secrets: Sequence[str], *, tolerance: int = 300) -> None:
        self.secrets = [s.strip() for s in secrets if s.strip()]
        if not self.secrets:
            raise InvalidInput("no webhook signing secret", [
                FieldError("secrets", "give at least one (whsec_...)")])
        self.tolerance = tolerance

    @classmethod
    def from_secrets(cls, secrets: str) -> StripeWebhooks:
        """``"whsec_new,whsec_old"``: the entry point of ``commerce_core.payment_webhooks``."""
        return cls(secrets.split(","))

    def parse(self, payload: bytes, headers: Mapping[str, str]) -> PaymentNotification | None:
        """The notification in a verified delivery, or ``None`` for an event that is not
        about a payment of ours. Raises `InvalidSignature` or `InvalidNotification`."""
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidSignature("the webhook body is not UTF-8") from exc
        self._verify(text, headers.get("stripe-signature"))
        try:
            event = json.loads(text)
        except (ValueError, RecursionError) as exc:  # RecursionError: absurd nesting
            raise InvalidNotification("a signed body that is not JSON we read") from exc
        event_id, kind, subject = _envelope(event)
        if kind == "refund.created":
            return self._refund(event_id, subject)
        known = _KINDS.get(kind)
        metadata = _field(subject, "metadata", dict, optional=True) or {}
        reference = metadata.get(REFERENCE_FIELD)
        if known is None or reference is None:
            return None
        if not isinstance(reference, str) or not reference:
            raise _invalid("data.object.metadata", "the order reference must be a string")
        if known is NotificationKind.VOIDED and subject.get("cancellation_reason") == "automatic":
            known = NotificationKind.EXPIRED  # Stripe cancels a lapsed hold by itself
        field = "amount_received" if known is NotificationKind.CAPTURED else "amount"
        return PaymentNotification(
            provider=self.provider, event_id=event_id, kind=known,
            authorization_id=_field(subject, "id", str), reference=reference,
            amount=_money(subject, field))

    def _refund(self, event_id: str, refund: dict[str, Any]) -> PaymentNotification | None:
        """A refund: ours carry the key they were made under; one made in the dashboard
        carries none, and is recorded by the saga as made outside."""
        intent = refund.get("payment_intent")
        if intent is None:
            return None  # a refund of a charge made without a PaymentIntent: not ours
        metadata = _field(refund, "metadata", dict, optional=True) or {}
        key = metadata.get(KEY_FIELD)
        if key is not None and not isinstance(key, str):
            raise _invalid("data.object.metadata", "the refund's key must be a string")
        return PaymentNotification(
            provider=self.provider, event_id=event_id, kind=NotificationKind.REFUNDED,
            authorization_id=_field(refund, "payment_intent", str),
            amount=_money(refund, "amount", minimum=1), refund_id=_field(refund, "id", str),
            refund_key=key)

    def _verify(self, text: str, header: str | None) -> None:
        for secret in self.secrets:
            try:
                stripe.WebhookSignature.verify_header(text, header, secret, self.tolerance)
                break
            except stripe.SignatureVerificationError:
                continue
        else:
            raise InvalidSignature("the Stripe-Signature header does not verify")
        # the library refuses timestamps too old, not those ahead of our clock
        stamps = [int(v) for k, _, v in (part.partition("=") for part in str(header).split(","))
                  if k.strip() == "t" and v.strip().isdigit()]
        if any(t > time.time() + self.tolerance for t in stamps):
            raise InvalidSignature("the Stripe-Signature timestamp is in the future")


def _invalid(path: str, message: str) -> InvalidNotification:
    return InvalidNotification("a signed body that is not a Stripe event we can read",
                               [FieldError(path, message)])


def _envelope(event: object) -> tuple[str, str, dict[str, Any]]:
    """The event's id, type and ``data.object``, each of the type Stripe sends."""
    if not isinstance(event, dict):
        raise _invalid("", "must be an object")
    event_id, kind, data = event.get("id"), event.get("type"), event.get("data")
    if not isinstance(event_id, str) or not event_id:
        raise _invalid("id", "must be a non-empty string")
    if not isinstance(kind, str) or not kind:
        raise _invalid("type", "must be a non-empty string")
    subject = data.get("object") if isinstance(data, dict) else None
    if not isinstance(subject, dict):
        raise _invalid("data.object", "must be an object")
    return event_id, kind, subject


def _field(subject: dict[str, Any], name: str, kind: type, *, optional: bool = False) -> Any:
    value = subject.get(name)
    if value is None and optional:
        return None
    if not isinstance(value, kind) or isinstance(value, bool) or (kind is str and not value):
        what = "a non-empty string" if kind is str else f"a {kind.__name__}"
        raise _invalid(f"data.object.{name}", f"must be {what}")
    return value


def _money(subject: dict[str, Any], field: str, *, minimum: int = 0) -> Money:
    amount, currency = subject.get(field), subject.get("currency")
    if type(amount) is not int or not minimum <= amount <= MAX_AMOUNT:
        raise _invalid(f"data.object.{field}", "must be an integer amount in minor units")
    if not isinstance(currency, str) or not _CURRENCY.fullmatch(currency):
        raise _invalid("data.object.currency", "must be a three-letter currency code")
    return Money(amount, currency.upper())

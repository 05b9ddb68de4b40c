"""Stripe's webhooks: signature verified, then translated into the port's terms."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import stripe
from commerce_core.errors import FieldError, InvalidInput, InvalidSignature
from commerce_core.money import Money
from commerce_core.payments.model import NotificationKind, PaymentNotification
from commerce_core_stripe.gateway import REFERENCE_FIELD

__all__ = ["StripeWebhooks"]

#: PaymentIntent events and what they mean for us; other event types are acknowledged and
#: ignored (refunds and captures are driven, and recorded, by the saga itself).
_KINDS = {
    "payment_intent.amount_capturable_updated": NotificationKind.AUTHORIZED,
    "payment_intent.succeeded": NotificationKind.CAPTURED,
    "payment_intent.payment_failed": NotificationKind.DECLINED,
    "payment_intent.canceled": NotificationKind.VOIDED,
}


class StripeWebhooks:
    """Verifies ``Stripe-Signature`` (HMAC-SHA256 over ``"<timestamp>.<body>"``, compared
    in constant time by the official library) against each configured secret in turn, so
    that two secrets work while one is being rotated, and refuses events signed longer ago
    than ``tolerance`` seconds (a replayed capture of an old request)."""

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
        about a payment of ours. Raises `InvalidSignature`."""
        header = headers.get("stripe-signature")
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidSignature("the webhook body is not UTF-8") from exc
        for secret in self.secrets:
            try:
                stripe.WebhookSignature.verify_header(text, header, secret, self.tolerance)
                break
            except stripe.SignatureVerificationError:
                continue
        else:
            raise InvalidSignature("the Stripe-Signature header does not verify")
        try:
            event: dict[str, Any] = json.loads(text)
            kind = _KINDS.get(event["type"])
            intent = event["data"]["object"]
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidSignature("a signed body that is not a Stripe event") from exc
        reference = (intent.get("metadata") or {}).get(REFERENCE_FIELD)
        if kind is None or not reference:
            return None
        if kind is NotificationKind.VOIDED and intent.get("cancellation_reason") == "automatic":
            kind = NotificationKind.EXPIRED  # Stripe cancels a lapsed hold by itself
        amount = intent.get("amount_received") or intent.get("amount")
        return PaymentNotification(
            provider=self.provider, event_id=str(event["id"]), kind=kind,
            authorization_id=str(intent.get("id", "")), reference=str(reference),
            amount=Money(int(amount), str(intent["currency"]).upper()) if amount else None)

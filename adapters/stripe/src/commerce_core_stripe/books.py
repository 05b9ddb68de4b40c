"""The provider's side of the ledger: Stripe's PaymentIntents read back as the records
`commerce_core.testing.check_invariants` compares with the order store."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs

import stripe
from commerce_core_stripe.gateway import KEY_FIELD, REFERENCE_FIELD

__all__ = ["StripeBooks", "StripeRecord"]

_STATUS = {"requires_capture": "authorized", "succeeded": "captured",
           "requires_payment_method": "declined"}


@attrs.frozen
class StripeRecord:
    """One PaymentIntent of ours, in the terms of `commerce_core.testing.ProviderRecord`."""

    id: str
    reference: str
    idempotency_key: str
    status: str
    amount: int
    currency: str
    captured: int
    refunded: int

    @classmethod
    def of(cls, intent: Mapping[str, Any]) -> StripeRecord:
        status = _STATUS.get(intent["status"], intent["status"])
        if intent["status"] == "canceled":
            status = "expired" if intent.get("cancellation_reason") == "automatic" else "voided"
        metadata = intent.get("metadata") or {}
        charge = intent.get("latest_charge")  # expanded: refunds are the charge's
        refunded = charge.get("amount_refunded", 0) if isinstance(charge, Mapping) else 0
        return cls(id=intent["id"], reference=metadata.get(REFERENCE_FIELD, ""),
                   idempotency_key=metadata.get(KEY_FIELD, ""), status=status,
                   amount=int(intent["amount"]), currency=str(intent["currency"]).upper(),
                   captured=int(intent.get("amount_received") or 0),
                   refunded=int(refunded))


class StripeBooks:
    """Every PaymentIntent this adapter made, as the provider records it."""

    def __init__(self, intents: Iterable[Mapping[str, Any]]) -> None:
        self._records = [StripeRecord.of(i) for i in intents
                         if KEY_FIELD in (i.get("metadata") or {})]

    @classmethod
    def from_client(cls, client: stripe.StripeClient, *, page_size: int = 100) -> StripeBooks:
        """Read them from Stripe: every PaymentIntent, page by page, with its latest charge
        expanded (where the refunded amount is)."""
        return cls(intent.to_dict() for intent in client.v1.payment_intents.list(
            params={"limit": page_size, "expand": ["data.latest_charge"]}).auto_paging_iter())

    def authorizations(self) -> Sequence[StripeRecord]:
        return list(self._records)

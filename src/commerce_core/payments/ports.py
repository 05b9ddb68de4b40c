"""The payment gateway port: what commerce-core asks of a payment service provider."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Protocol, runtime_checkable

import attrs

from commerce_core.money import Money
from commerce_core.payments.model import ProviderRefund

__all__ = [
    "ALREADY_CAPTURED",
    "AUTHORIZATION_EXPIRED",
    "DelayedLookup",
    "GatewayAuthorization",
    "PaymentGateway",
    "RefundLookup",
]

#: The ``decline_code`` of a capture refused because the hold lapsed (nothing was captured).
AUTHORIZATION_EXPIRED = "authorization_expired"
#: The ``decline_code`` of a void refused because the payment was captured: the saga reads
#: it as "captured", never as a failure.
ALREADY_CAPTURED = "already_captured"


@attrs.frozen
class GatewayAuthorization:
    """An authorization (hold) the provider made, by its provider-side id."""

    id: str
    amount: Money
    #: when the hold lapses, if the provider says (a card hold lasts about seven days)
    expires_at: datetime | None = attrs.field(default=None, eq=False)


class PaymentGateway(Protocol):
    """A payment service provider.

    Every mutating call carries an idempotency key: the same key again must not charge,
    capture or refund twice, but return the first outcome. Outcomes other than success are
    `PaymentDeclined` (permanent) or
    `PaymentUnavailable` (transient: the call may be retried with
    the same key, and its effect may or may not have happened).

    Two answers have a meaning of their own: a capture refused because the hold lapsed is
    declined with ``decline_code=AUTHORIZATION_EXPIRED``; a void refused because the
    payment was captured, with ``decline_code=ALREADY_CAPTURED``. A capture of a payment
    captured already for the same amount succeeds (the outcome asked for), and so does a
    void of one voided or lapsed already.

    A gateway that holds connections may also have ``close()`` (optional, not part of the
    protocol): `Platform.close` calls it.
    """

    def authorize(
        self, *, token: str, amount: Money, idempotency_key: str, reference: str
    ) -> GatewayAuthorization: ...

    def capture(self, *, authorization_id: str, amount: Money, idempotency_key: str) -> None: ...

    def void(self, *, authorization_id: str, idempotency_key: str) -> None: ...

    def refund(self, *, authorization_id: str, amount: Money, idempotency_key: str) -> str:
        """Refund part or all of a capture; returns the provider's refund id. The adapter
        leaves ``idempotency_key`` on the refund where the provider keeps such data, so that
        its refund webhooks tell the library's refunds from those made outside it."""

    def find_authorization(self, *, idempotency_key: str) -> GatewayAuthorization | None:
        """The live authorization made under this key, if any: how recovery learns what
        happened when a response was lost.

        A gateway whose lookups may miss a very recent authorization says how recent with
        a ``lookup_delay`` (`DelayedLookup`)."""


@runtime_checkable
class RefundLookup(Protocol):
    """A gateway that can list a payment's refunds (an optional capability): when a refund
    is refused, the saga reads them to learn refunds made outside the library."""

    def list_refunds(self, *, authorization_id: str) -> Sequence[ProviderRefund]:
        """Every refund of the payment, oldest first."""


@runtime_checkable
class DelayedLookup(Protocol):
    """A gateway whose `PaymentGateway.find_authorization` may miss a very recent
    authorization (an eventually consistent search): until ``lookup_delay`` has passed, "not
    found" is not believed (an optional capability; without it, lookups are immediate)."""

    @property
    def lookup_delay(self) -> timedelta: ...

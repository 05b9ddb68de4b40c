"""The payment gateway port: what commerce-core asks of a payment service provider."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

import attrs

from commerce_core.money import Money

__all__ = ["GatewayAuthorization", "PaymentGateway"]


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
    """

    def authorize(
        self, *, token: str, amount: Money, idempotency_key: str, reference: str
    ) -> GatewayAuthorization: ...

    def capture(self, *, authorization_id: str, amount: Money, idempotency_key: str) -> None: ...

    def void(self, *, authorization_id: str, idempotency_key: str) -> None: ...

    def refund(self, *, authorization_id: str, amount: Money, idempotency_key: str) -> str:
        """Refund part or all of a capture; returns the provider's refund id."""

    def find_authorization(self, *, idempotency_key: str) -> GatewayAuthorization | None:
        """The live authorization made under this key, if any: how recovery learns what
        happened when a response was lost.

        A gateway whose lookups may miss a very recent authorization (an eventually
        consistent search) says how recent with a ``lookup_delay`` attribute (a
        `timedelta`); until that much time has passed, "not found" is not believed."""

"""Payments domain: a payment's authorization, capture, void and refunds, with its event log."""

from __future__ import annotations

import enum
from datetime import datetime

import attrs

from commerce_core.errors import InvalidInput, InvalidTransition, RefundExceedsCaptured
from commerce_core.money import Money

__all__ = [
    "NotificationKind",
    "Payment",
    "PaymentEvent",
    "PaymentNotification",
    "PaymentStatus",
    "PendingRefund",
]


class PaymentStatus(enum.StrEnum):
    """``pending``: authorization asked for, outcome not yet known."""

    PENDING = "pending"
    AUTHORIZED = "authorized"
    DECLINED = "declined"
    VOIDED = "voided"
    CAPTURED = "captured"
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"
    FAILED = "failed"


@attrs.frozen
class PaymentEvent:
    """One entry of a payment's log (``authorized``, ``declined``, ``captured``, ...)."""

    kind: str
    at: datetime
    amount: Money | None = None
    reference: str | None = None


class NotificationKind(enum.StrEnum):
    """What a provider tells us happened to a payment, in the port's own terms."""

    AUTHORIZED = "authorized"
    DECLINED = "declined"
    CAPTURED = "captured"
    VOIDED = "voided"
    EXPIRED = "expired"  # the hold lapsed before it was captured
    REFUNDED = "refunded"


@attrs.frozen(kw_only=True)
class PaymentNotification:
    """A provider's webhook, verified and translated by its adapter.

    ``event_id`` is the provider's id of the event: the same event delivered twice is
    applied once. ``reference`` is the order the payment belongs to (as the adapter sent it
    when it authorized).
    """

    provider: str
    event_id: str
    kind: NotificationKind
    authorization_id: str
    reference: str
    amount: Money | None = None


@attrs.frozen
class PendingRefund:
    """A refund asked of the provider whose outcome is not recorded yet (resumable)."""

    amount: Money
    idempotency_key: str
    reason: str


@attrs.frozen(kw_only=True)
class Payment:
    """The payment of one order. Immutable: each operation returns the next version.

    Amounts only ever grow: ``refunded <= captured <= authorized``.
    """

    id: str
    order_id: str
    amount: Money
    status: PaymentStatus
    created_at: datetime
    updated_at: datetime
    authorization_id: str | None = None
    authorized: Money
    captured: Money
    refunded: Money
    refund_count: int = 0
    pending_refund: PendingRefund | None = None
    events: tuple[PaymentEvent, ...] = ()
    #: when the provider's hold lapses, if it says (capture before then)
    capture_before: datetime | None = None
    version: int = 0

    @classmethod
    def start(cls, *, id: str, order_id: str, amount: Money, at: datetime) -> Payment:
        zero = Money.zero(amount.currency)
        return cls(
            id=id, order_id=order_id, amount=amount, status=PaymentStatus.PENDING,
            created_at=at, updated_at=at, authorized=zero, captured=zero, refunded=zero,
        )

    @property
    def authorize_key(self) -> str:
        """The provider idempotency key of the authorization, derived from the order."""
        return f"{self.order_id}:authorize"

    def provider_id(self) -> str:
        """The provider's authorization id; only an authorized payment has one."""
        if self.authorization_id is None:
            raise InvalidTransition("payment", self.id, self.status, "a provider operation")
        return self.authorization_id

    @property
    def refundable(self) -> Money:
        return self.captured - self.refunded

    def _event(self, status: PaymentStatus, kind: str, at: datetime,
               amount: Money | None = None, reference: str | None = None,
               **changes: object) -> Payment:
        return attrs.evolve(
            self, status=status, updated_at=at,
            events=(*self.events, PaymentEvent(kind, at, amount, reference)),
            **changes,  # type: ignore[arg-type]  # attrs.evolve takes **kwargs
        )

    def _require(self, target: str, *allowed: PaymentStatus) -> None:
        if self.status not in allowed:
            raise InvalidTransition("payment", self.id, self.status, target)

    def authorize(
        self, authorization_id: str, at: datetime, *, capture_before: datetime | None = None,
    ) -> Payment:
        self._require("authorized", PaymentStatus.PENDING)
        return self._event(PaymentStatus.AUTHORIZED, "authorized", at, self.amount,
                           authorization_id, authorization_id=authorization_id,
                           authorized=self.amount, capture_before=capture_before)

    def lapsed(self, now: datetime) -> bool:
        """An uncaptured hold past the time the provider said it lapses."""
        return (self.status is PaymentStatus.AUTHORIZED and self.capture_before is not None
                and now >= self.capture_before)

    def decline(self, reason: str, at: datetime) -> Payment:
        self._require("declined", PaymentStatus.PENDING)
        return self._event(PaymentStatus.DECLINED, "declined", at, reference=reason)

    def abandon(self, at: datetime) -> Payment:
        """The provider never authorized it (unavailable, or nothing found by its key)."""
        self._require("failed", PaymentStatus.PENDING)
        return self._event(PaymentStatus.FAILED, "failed", at)

    def void(self, at: datetime) -> Payment:
        self._require("voided", PaymentStatus.AUTHORIZED)
        return self._event(PaymentStatus.VOIDED, "voided", at, self.authorized)

    def capture(self, amount: Money, at: datetime) -> Payment:
        self._require("captured", PaymentStatus.AUTHORIZED)
        if amount > self.authorized:
            raise InvalidInput(f"capture of {amount} exceeds the authorized {self.authorized}")
        return self._event(PaymentStatus.CAPTURED, "captured", at, amount, captured=amount)

    def request_refund(self, amount: Money, reason: str, at: datetime) -> Payment:
        """Record a refund about to be asked of the provider, with its idempotency key."""
        self._require("refunded", PaymentStatus.CAPTURED, PaymentStatus.PARTIALLY_REFUNDED)
        if self.pending_refund is not None:
            raise InvalidTransition("payment", self.id, "refund in flight", "refunded")
        if amount.amount <= 0 or amount > self.refundable:
            raise RefundExceedsCaptured(amount.amount, self.refundable.amount, amount.currency)
        pending = PendingRefund(amount, f"{self.order_id}:refund:{self.refund_count + 1}", reason)
        return self._event(self.status, "refund_requested", at, amount, reason,
                           pending_refund=pending)

    def refund_failed(self, reason: str, at: datetime) -> Payment:
        """The provider refused the pending refund; nothing was refunded."""
        if self.pending_refund is None:
            raise InvalidTransition("payment", self.id, self.status, "refund failed")
        return self._event(self.status, "refund_failed", at, self.pending_refund.amount, reason,
                           pending_refund=None)

    def refund_done(self, refund_id: str, at: datetime) -> Payment:
        """The pending refund went through at the provider."""
        if self.pending_refund is None:
            raise InvalidTransition("payment", self.id, self.status, "refunded")
        refunded = self.refunded + self.pending_refund.amount
        status = (PaymentStatus.REFUNDED if refunded == self.captured
                  else PaymentStatus.PARTIALLY_REFUNDED)
        return self._event(status, "refunded", at, self.pending_refund.amount, refund_id,
                           refunded=refunded, refund_count=self.refund_count + 1,
                           pending_refund=None)

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
    "ProviderRefund",
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
    """One entry of a payment's log (``authorized``, ``declined``, ``captured``,
    ``refund_requested``, ``refunded``, ``refund_failed``, ``refunded_outside``, ...).

    ``reference`` is what the provider calls it (an authorization or refund id) or a reason;
    ``key`` is the caller's idempotency key of the refund an entry belongs to, if it gave one.
    """

    kind: str
    at: datetime
    amount: Money | None = None
    reference: str | None = None
    key: str | None = None


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
    when it authorized), or ``None`` when the event does not carry it (a refund): the
    payment is then found by ``authorization_id``. The event is applied only if its
    authorization id, amount and currency agree with the order's payment.

    ``amount`` is the authorization's amount for ``authorized``, ``expired`` and ``voided``,
    the captured amount for ``captured``, and the refund's own amount for ``refunded``.
    A ``refunded`` event names the refund (``refund_id``) and, when the refund was made
    through this library, the idempotency key it was made with (``refund_key``): a refund
    without one was made outside the library (in the provider's dashboard) and is recorded
    on the payment, once per ``refund_id``.
    """

    provider: str
    event_id: str
    kind: NotificationKind
    authorization_id: str
    reference: str | None = None
    amount: Money | None = None
    refund_id: str | None = None
    refund_key: str | None = None


@attrs.frozen
class PendingRefund:
    """A refund asked of the provider whose outcome is not recorded yet (resumable).

    ``idempotency_key`` is the provider's key of this attempt (``<order>:refund:<n>``, a new
    one for every attempt); ``request_key`` the caller's own key, if it gave one."""

    amount: Money
    idempotency_key: str
    reason: str
    request_key: str | None = None


@attrs.frozen
class ProviderRefund:
    """A refund as the provider's books show it: ``idempotency_key`` is the key it was made
    with, ``None`` for one made outside the library (the provider's dashboard)."""

    id: str
    amount: Money
    idempotency_key: str | None = None


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

    @property
    def refund_attempts(self) -> int:
        """How many refunds were ever asked of the provider (each under a key of its own)."""
        return sum(1 for event in self.events if event.kind == "refund_requested")

    def refund_request(self, request_key: str) -> PaymentEvent | None:
        """The refund asked for under the caller's ``request_key``, if there was one."""
        return next((e for e in self.events
                     if e.kind == "refund_requested" and e.key == request_key), None)

    def refund_outcome(self, request_key: str) -> PaymentEvent | None:
        """How the refund asked for under ``request_key`` ended (``refunded`` or
        ``refund_failed``), ``None`` while it is still pending."""
        return next((e for e in self.events if e.kind in ("refunded", "refund_failed")
                     and e.key == request_key), None)

    def request_refund(
        self, amount: Money, reason: str, at: datetime, *, request_key: str | None = None,
    ) -> Payment:
        """Record a refund about to be asked of the provider, under a provider key of its own
        (``<order>:refund:<n>``, never reused, even after a refusal)."""
        self._require("refunded", PaymentStatus.CAPTURED, PaymentStatus.PARTIALLY_REFUNDED)
        if self.pending_refund is not None:
            raise InvalidTransition("payment", self.id, "refund in flight", "refunded")
        if amount.amount <= 0 or amount > self.refundable:
            raise RefundExceedsCaptured(amount.amount, self.refundable.amount, amount.currency)
        pending = PendingRefund(amount, f"{self.order_id}:refund:{self.refund_attempts + 1}",
                                reason, request_key)
        return attrs.evolve(self, updated_at=at, pending_refund=pending, events=(
            *self.events, PaymentEvent("refund_requested", at, amount, reason, request_key)))

    def refund_failed(self, reason: str, at: datetime) -> Payment:
        """The provider refused the pending refund; nothing was refunded."""
        pending = self.pending_refund
        if pending is None:
            raise InvalidTransition("payment", self.id, self.status, "refund failed")
        return attrs.evolve(self, updated_at=at, pending_refund=None, events=(
            *self.events,
            PaymentEvent("refund_failed", at, pending.amount, reason, pending.request_key)))

    def refund_done(self, refund_id: str, at: datetime) -> Payment:
        """The pending refund went through at the provider."""
        pending = self.pending_refund
        if pending is None:
            raise InvalidTransition("payment", self.id, self.status, "refunded")
        refunded = self.refunded + pending.amount
        return attrs.evolve(
            self, status=self._refund_status(refunded), updated_at=at, refunded=refunded,
            refund_count=self.refund_count + 1, pending_refund=None, events=(
                *self.events,
                PaymentEvent("refunded", at, pending.amount, refund_id, pending.request_key)))

    def knows_refund(self, refund_id: str) -> bool:
        """Whether a refund of this id (ours, or one made outside) is recorded already."""
        return any(e.reference == refund_id for e in self.events
                   if e.kind in ("refunded", "refunded_outside"))

    def record_outside_refund(self, refund_id: str, amount: Money, at: datetime) -> Payment:
        """A refund made outside the library (the provider's dashboard), learnt from the
        provider: recorded once per ``refund_id``, so that what is refundable stays true to
        the provider's books. Unchanged if it is known already."""
        self._require("refunded_outside", PaymentStatus.CAPTURED,
                      PaymentStatus.PARTIALLY_REFUNDED, PaymentStatus.REFUNDED)
        if self.knows_refund(refund_id):
            return self
        if amount.amount <= 0 or amount > self.refundable:
            raise RefundExceedsCaptured(amount.amount, self.refundable.amount, amount.currency)
        refunded = self.refunded + amount
        return attrs.evolve(
            self, status=self._refund_status(refunded), updated_at=at, refunded=refunded,
            events=(*self.events, PaymentEvent("refunded_outside", at, amount, refund_id)))

    def _refund_status(self, refunded: Money) -> PaymentStatus:
        return (PaymentStatus.REFUNDED if refunded == self.captured
                else PaymentStatus.PARTIALLY_REFUNDED)

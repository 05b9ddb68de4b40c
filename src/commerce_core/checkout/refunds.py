"""Refunds: part or all of a capture, each attempt under a provider key of its own, the
caller's own key honoured, and refunds made outside the library learnt from the provider."""

from __future__ import annotations

import logging

from commerce_core._validate import Errors, check_idempotency_key, check_instance, check_text
from commerce_core.checkout._runner import RETURN_STEPS, Saga, StepResult
from commerce_core.errors import (
    CommerceError,
    ConcurrencyConflict,
    CurrencyMismatch,
    IdempotencyKeyReused,
    InvalidTransition,
    PaymentDeclined,
    PaymentUnavailable,
)
from commerce_core.money import Money
from commerce_core.orders.model import Order, OrderStatus, SagaStep
from commerce_core.payments.model import Payment, PaymentEvent, PaymentStatus

__all__ = ["close_refund", "learn_outside_refunds", "ours", "refund", "settle_pending_refund",
           "settle_refund", "settle_share_refund"]

log = logging.getLogger("commerce_core.checkout")

#: A payment with money to give back.
_REFUNDABLE = frozenset({PaymentStatus.CAPTURED, PaymentStatus.PARTIALLY_REFUNDED})

#: The decline code of a refund the provider refused because its key was used before.
KEY_REUSED = "idempotency_key_reused"


def refund(saga: Saga, order_id: str, *, amount: Money | None, reason: str,
           idempotency_key: str | None) -> Order:
    """See `Checkout.refund`."""
    errors = Errors()
    check_text(errors, "reason", reason)
    if amount is not None:
        check_instance(errors, "amount", amount, Money, "Money")
    errors.raise_if_any("invalid refund")
    if idempotency_key is not None:
        check_idempotency_key(idempotency_key)
    order = saga.load(order_id)
    if order.saga_step in RETURN_STEPS:  # a return's step: finished first
        order = saga.at_rest(order)
    payment = saga.payment(order)
    if idempotency_key is not None and (asked := payment.refund_request(idempotency_key)):
        return _replayed(saga, order, payment, asked, amount=amount, reason=reason)
    pending = payment.pending_refund
    if order.saga_step is SagaStep.REFUNDING:
        # a refund still in flight (the provider was down): finish it first; if this call
        # repeats it (the same amount, or "all of it" when that one was all of it, and the
        # same reason), that is all it asked for
        repeat = pending is not None and pending.reason == reason and (
            pending.amount == (amount if amount is not None else payment.refundable))
        order = saga.finish(order)
        if repeat:
            return order
        payment = saga.payment(order)
    elif pending is not None:
        # another refund started between this call's two reads: a race, worth trying again
        # (the retry finds it in flight), not an answer to keep
        raise ConcurrencyConflict("order", order.id)
    if not order.finished or payment.status not in _REFUNDABLE:
        raise InvalidTransition("order", order.id, order.status, OrderStatus.REFUNDED)
    wanted = amount if amount is not None else payment.refundable
    if wanted.currency != payment.amount.currency:
        raise CurrencyMismatch(wanted.currency, payment.amount.currency)
    now = saga.clock()
    payment = payment.request_refund(wanted, reason, now, request_key=idempotency_key)
    order = saga.save(order.step(SagaStep.REFUNDING, now), payment)
    saga.notify("refunding", order)
    return saga.finish(order)


def _replayed(saga: Saga, order: Order, payment: Payment, asked: PaymentEvent, *,
              amount: Money | None, reason: str) -> Order:
    """A refund asked for again under the caller's key: its outcome, never a second one."""
    key = str(asked.key)
    if asked.reference != reason or (amount is not None and asked.amount != amount):
        raise IdempotencyKeyReused(key)
    pending = payment.pending_refund
    if pending is not None and pending.request_key == key:
        return saga.finish(order)  # still in flight: resume it
    outcome = payment.refund_outcome(key)
    if outcome is not None and outcome.kind == "refund_failed":
        raise PaymentDeclined(f"the refund was refused: {outcome.reference}",
                              decline_code=str(outcome.reference), order_id=order.id)
    return order


def settle_refund(saga: Saga, order: Order, payment: Payment | None) -> StepResult:
    """The ``refunding`` step: ask the provider for the pending refund, record the outcome,
    and close the order as ``refunded`` when every captured cent is back."""
    payment = saga.payment(order)
    payment, error, refunded = settle_pending_refund(saga, payment)
    order = close_refund(saga, order, payment, refunded)
    saga.notify("refunded", order)
    return StepResult(order, error)


def close_refund(saga: Saga, order: Order, payment: Payment, refunded: Money | None, *,
                 also: tuple[tuple[str, dict[str, object]], ...] = ()) -> Order:
    """Write the order at rest with its payment after a refund was asked for: ``refunded``
    when every captured cent is back, with an ``order.refunded`` event if one was made
    (and the events ``also`` names)."""
    now = saga.clock()
    if payment.status is PaymentStatus.REFUNDED and order.can_become(OrderStatus.REFUNDED):
        order = order.transition(OrderStatus.REFUNDED, now, saga_step=SagaStep.DONE)
    else:
        order = order.step(SagaStep.DONE, now)
    if refunded is None:
        return saga.save(order, payment, also=also)
    return saga.save(order, payment, event="order.refunded", details={
        "refunded": {"amount": refunded.amount, "currency": refunded.currency},
        "refunded_in_total": payment.refunded.amount}, also=also)


def settle_share_refund(
    saga: Saga, order: Order, reason: str,
) -> tuple[Order, Payment, CommerceError | None, Money | None]:
    """Ask the provider for the pending refund of a share of the order (its cancelled rest,
    a return): the order, the payment with the outcome recorded, the refusal if there was
    one, and the amount refunded. A share refused because refunds made outside the library
    (learnt just now) left less than it is refunded what is left of the capture instead,
    under a key of its own, written before it is asked for."""
    payment = saga.payment(order)
    asked = payment.pending_refund
    payment, error, refunded = settle_pending_refund(saga, payment)
    if (error is not None and asked is not None and payment.pending_refund is None
            and 0 < payment.refundable.amount < asked.amount.amount):
        payment = payment.request_refund(payment.refundable, reason, saga.clock())
        order = saga.save(order, payment)
        payment, error, refunded = settle_pending_refund(saga, saga.payment(order))
    return order, payment, error, refunded


def settle_pending_refund(
    saga: Saga, payment: Payment,
) -> tuple[Payment, CommerceError | None, Money | None]:
    """Ask the provider for the payment's pending refund, under its key: the payment with
    the outcome recorded, the error if the provider refused it, and the amount refunded.

    A refusal is final for that attempt (the next one gets a key of its own). It may mean
    that money was refunded outside the library: the provider's refunds are read then, and
    those made outside are recorded. A key the provider says was used before is a refusal
    too, with a clear reason, never a saga left half-way."""
    pending = payment.pending_refund
    if pending is None:
        return payment, None, None
    try:
        refund_id = saga.payments.refund(
            authorization_id=payment.provider_id(), amount=pending.amount,
            idempotency_key=pending.idempotency_key,
        )
    except PaymentDeclined as exc:
        payment = payment.refund_failed(exc.decline_code, saga.clock())
        return learn_outside_refunds(saga, payment), exc, None
    except IdempotencyKeyReused:
        error = PaymentDeclined(
            f"the provider refused the refund: its key {pending.idempotency_key!r} was used "
            "before for another request", decline_code=KEY_REUSED)
        return payment.refund_failed(KEY_REUSED, saga.clock()), error, None
    return payment.refund_done(refund_id, saga.clock()), None, pending.amount


def ours(payment: Payment, key: str | None) -> bool:
    """Whether a provider refund made under ``key`` is one of this library's refunds of
    ``payment`` (those carry ``<order>:refund:<n>``)."""
    return key is not None and key.startswith(f"{payment.order_id}:refund:")


def learn_outside_refunds(saga: Saga, payment: Payment) -> Payment:
    """``payment`` with the refunds the provider made outside the library recorded (those of
    its refunds that carry none of our keys), if the gateway can list them."""
    try:
        refunds = saga.payments.list_refunds(authorization_id=payment.provider_id())
    except PaymentUnavailable as exc:  # learnt later: from its webhook or the next refusal
        log.warning("payment %s: cannot read the provider's refunds: %s", payment.id, exc)
        return payment
    for found in refunds or ():
        if ours(payment, found.idempotency_key) or payment.knows_refund(found.id):
            continue
        try:
            payment = payment.record_outside_refund(found.id, found.amount, saga.clock())
        except CommerceError as exc:  # more than the books say was captured: left alone
            log.error("payment %s: refund %s made outside cannot be recorded: %s",
                      payment.id, found.id, exc)
        else:
            log.warning("payment %s: refund %s of %s was made outside the library; recorded",
                        payment.id, found.id, found.amount)
    return payment

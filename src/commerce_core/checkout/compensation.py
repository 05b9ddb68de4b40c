"""Giving back: a failed checkout or a cancelled order releases its stock and voids its
payment (or, if the provider had captured it, refunds it)."""

from __future__ import annotations

import logging

from commerce_core.checkout._runner import RETURN_STEPS, Saga, StepResult
from commerce_core.checkout.refunds import (
    close_refund,
    settle_pending_refund,
    settle_share_refund,
)
from commerce_core.errors import CommerceError, PaymentDeclined, PaymentUnavailable
from commerce_core.money import Money
from commerce_core.orders.model import Order, OrderStatus, SagaStep
from commerce_core.orders.shares import shares_of, units_share
from commerce_core.payments.model import Payment, PaymentStatus
from commerce_core.payments.ports import ALREADY_CAPTURED

__all__ = ["cancel", "cancel_unpaid", "compensate", "settle_cancelled_rest"]

log = logging.getLogger("commerce_core.checkout")

#: Why the library refunds a cancelled order whose payment the provider had captured.
CAPTURED_REFUND_REASON = "the order was cancelled after its payment was captured"
#: Why the library refunds part of a partly shipped order whose rest was cancelled.
REST_CANCELLED_REASON = "what was left to ship was cancelled"


def cancel(saga: Saga, order_id: str, customer_id: str | None) -> Order:
    """See `Checkout.cancel`."""
    order = saga.load(order_id, customer_id)
    if order.saga_step in RETURN_STEPS:  # a return's step: finished first
        order = saga.at_rest(order)
    if order.saga_step is SagaStep.CANCELLING_REST:
        pass  # cancelling the rest was cut short: resume it
    elif order.status is OrderStatus.PARTIALLY_SHIPPED and order.finished:
        order = _cancel_rest(saga, order)
    elif (order.status is not OrderStatus.CANCELLED
          or order.saga_step is not SagaStep.COMPENSATING):
        saga.require(order, OrderStatus.CANCELLED)
        order = saga.save(order.transition(
            OrderStatus.CANCELLED, saga.clock(), saga_step=SagaStep.COMPENSATING,
            lines=order.cancel_left(),
        ), event="order.cancelled")
        saga.notify("cancelling", order)
    # else: a cancel whose compensation was cut short (the provider down): resume it.
    # An error raised: the order is cancelled and its stock released either way; the error
    # says what is left: a void the provider could not take yet (repeat the cancel, or
    # recovery will), or a refund of a captured payment it refused
    return saga.finish(order)


def cancel_unpaid(saga: Saga, order: Order, detail: str) -> Order:
    """Cancel a confirmed order whose payment can no longer be taken: stock released, the
    (lapsed) authorization voided, the reason recorded."""
    # the hold is still uncaptured, so no parcel has left (the first one captures): one on
    # its way out is taken back
    order = saga.save(order.transition(
        OrderStatus.CANCELLED, saga.clock(), saga_step=SagaStep.COMPENSATING,
        failure_reason="authorization-expired", failure_detail=detail, shipments=(),
        lines=order.cancel_left(),
    ), event="order.cancelled", details={"reason": "authorization-expired"})
    saga.notify("cancelling", order)
    return saga.advance(order).order


def _cancel_rest(saga: Saga, order: Order) -> Order:
    """Start cancelling what a partly shipped order has left to ship: in one write, its units
    counted cancelled, the order ``shipped`` (all that will ship has), and the refund of
    their share of what was paid (`shares_of`: their part of the discounts and taxes, no
    shipping) recorded as pending; the ``cancelling_rest`` step then releases their stock
    and asks the provider for the refund."""
    payment = saga.payment(order)
    shares = shares_of(order)
    returned = order.refunded_returned()  # their share given back already
    share = sum(units_share(shares.lines[i], line.quantity,
                            line.cancelled_quantity + returned.get(line.sku, 0), line.left)
                for i, line in enumerate(order.lines))
    now = saga.clock()
    cancelled = [{"sku": line.sku, "quantity": line.left} for line in order.lines if line.left]
    share = min(share, payment.refundable.amount)  # what a dashboard refund left, at most
    if share > 0 and payment.status in (PaymentStatus.CAPTURED,
                                        PaymentStatus.PARTIALLY_REFUNDED):
        payment = payment.request_refund(Money(share, payment.amount.currency),
                                         REST_CANCELLED_REASON, now)
    order = saga.save(order.transition(
        OrderStatus.SHIPPED, now, saga_step=SagaStep.CANCELLING_REST,
        lines=order.cancel_left(),
    ), payment, event="order.rest_cancelled", details={
        "cancelled": cancelled,
        # asked of the provider next; `order.refunded` says when it is made
        "refund_requested": {"amount": share, "currency": payment.amount.currency}})
    saga.notify("cancelling_rest", order)
    return order


def settle_cancelled_rest(saga: Saga, order: Order, _: Payment | None) -> StepResult:
    """The ``cancelling_rest`` step: release the stock of what will not ship (only what the
    reservation still holds: the parcels that left are committed), then refund its share,
    under the refund's own key; a refund the provider refuses is recorded and raised, the
    order at rest (an admin may refund again)."""
    saga.inventory.release(order.reservation_id)
    saga.notify("stock_released", order)
    order, payment, error, refunded = settle_share_refund(saga, order, REST_CANCELLED_REASON)
    order = close_refund(saga, order, payment, refunded)
    saga.notify("rest_cancelled", order)
    return StepResult(order, error)


def compensate(saga: Saga, order: Order, _: Payment | None) -> StepResult:
    """The ``compensating`` step: give everything back (release the stock, void any
    authorization, refund any capture), then close the order."""
    saga.inventory.release(order.reservation_id)
    saga.notify("stock_released", order)
    payment = saga.payment(order)
    now = saga.clock()
    if payment.status is PaymentStatus.PENDING:
        found = saga.payments.find_authorization(payment.authorize_key)
        if found is None and now < payment.updated_at + saga.payments.lookup_delay:
            # the provider's lookup may not show a hold this recent yet: decide later
            # (the stock is released already; recovery comes back for the payment)
            raise PaymentUnavailable("cannot tell yet whether the provider holds a "
                                     "payment for this order", order_id=order.id)
        payment = (payment.abandon(now) if found is None
                   else payment.authorize(found.id, now, capture_before=found.expires_at))
    if payment.status is PaymentStatus.AUTHORIZED:
        payment = _void(saga, order, payment)
    error: CommerceError | None = None
    refunded = None
    if payment.pending_refund is None and payment.status in (
            PaymentStatus.CAPTURED, PaymentStatus.PARTIALLY_REFUNDED):
        # the key of the refund is written before it is asked for, so a crash in between
        # repeats that refund instead of making another
        payment = payment.request_refund(payment.refundable, CAPTURED_REFUND_REASON, now)
        order = saga.save(order, payment)
        payment = saga.payment(order)
    if payment.pending_refund is not None:
        payment, error, refunded = settle_pending_refund(saga, payment)
        if error is not None:
            log.error("order %s: cancelled with its payment captured, and the refund was "
                      "refused: %s", order.id, error)
    if order.status is OrderStatus.PENDING:
        order = order.transition(OrderStatus.FAILED, saga.clock(), saga_step=SagaStep.DONE)
        order = saga.save(order, payment, event="order.failed",
                          details={"reason": order.failure_reason})
    elif refunded is not None:
        order = saga.save(order.step(SagaStep.DONE, saga.clock()), payment,
                          event="order.refunded", details={
                              "refunded": {"amount": refunded.amount,
                                           "currency": refunded.currency},
                              "refunded_in_total": payment.refunded.amount})
    else:
        order = saga.save(order.step(SagaStep.DONE, saga.clock()), payment)
    saga.notify("compensated", order)
    return StepResult(order, error)


def _void(saga: Saga, order: Order, payment: Payment) -> Payment:
    """Void the hold; a void refused because the payment was captured means exactly that
    (a capture whose answer was lost, or one made in the provider's dashboard): it is
    recorded as captured, and compensation refunds it."""
    try:
        saga.payments.void(authorization_id=payment.provider_id(),
                           idempotency_key=f"{order.id}:void")
    except PaymentDeclined as exc:
        if exc.decline_code != ALREADY_CAPTURED:
            raise
        taken = (payment.authorized if exc.captured is None
                 else Money(exc.captured, payment.amount.currency))
        log.warning("order %s: the provider had captured %s of the payment being voided; "
                    "recorded as captured, to be refunded", order.id, taken)
        return payment.capture(taken, saga.clock())
    return payment.void(saga.clock())

"""Giving back: a failed checkout or a cancelled order releases its stock and voids its
payment (or, if the provider had captured it, refunds it)."""

from __future__ import annotations

import logging

from commerce_core.checkout._runner import Saga, StepResult
from commerce_core.checkout.refunds import settle_pending_refund
from commerce_core.errors import CommerceError, PaymentDeclined, PaymentUnavailable
from commerce_core.money import Money
from commerce_core.orders.model import Order, OrderStatus, SagaStep
from commerce_core.payments.model import Payment, PaymentStatus
from commerce_core.payments.ports import ALREADY_CAPTURED

__all__ = ["cancel", "cancel_unpaid", "compensate"]

log = logging.getLogger("commerce_core.checkout")

#: Why the library refunds a cancelled order whose payment the provider had captured.
CAPTURED_REFUND_REASON = "the order was cancelled after its payment was captured"


def cancel(saga: Saga, order_id: str, customer_id: str | None) -> Order:
    """See `Checkout.cancel`."""
    order = saga.load(order_id, customer_id)
    if order.status is not OrderStatus.CANCELLED or order.saga_step is not SagaStep.COMPENSATING:
        saga.require(order, OrderStatus.CANCELLED)
        order = saga.save(order.transition(
            OrderStatus.CANCELLED, saga.clock(), saga_step=SagaStep.COMPENSATING
        ), event="order.cancelled")
        saga.notify("cancelling", order)
    # else: a cancel whose compensation was cut short (the provider down): resume it
    result = saga.advance(order)
    if result.error is not None:
        # the order is cancelled and its stock released either way; the error says what is
        # left: a void the provider could not take yet (repeat the cancel, or recovery will),
        # or a refund of a captured payment it refused
        raise result.error
    return result.order


def cancel_unpaid(saga: Saga, order: Order, detail: str) -> Order:
    """Cancel a confirmed order whose payment can no longer be taken: stock released, the
    (lapsed) authorization voided, the reason recorded."""
    order = saga.save(order.transition(
        OrderStatus.CANCELLED, saga.clock(), saga_step=SagaStep.COMPENSATING,
        failure_reason="authorization-expired", failure_detail=detail, shipment=None,
    ), event="order.cancelled", details={"reason": "authorization-expired"})
    saga.notify("cancelling", order)
    return saga.advance(order).order


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

"""Fulfilment: shipping captures the payment and commits the reserved stock; delivery closes
the order."""

from __future__ import annotations

from commerce_core._validate import Errors, check_text
from commerce_core.checkout._runner import Saga, StepResult
from commerce_core.checkout.compensation import cancel_unpaid
from commerce_core.errors import PaymentDeclined
from commerce_core.orders.model import Order, OrderStatus, SagaStep, Shipment
from commerce_core.payments.model import Payment, PaymentStatus
from commerce_core.payments.ports import AUTHORIZATION_EXPIRED

__all__ = ["deliver", "settle_shipment", "ship"]


def ship(saga: Saga, order_id: str, *, carrier: str, tracking_number: str) -> Order:
    """See `Checkout.ship`."""
    errors = Errors()
    check_text(errors, "carrier", carrier)
    check_text(errors, "tracking_number", tracking_number)
    errors.raise_if_any("invalid shipment")
    order = saga.load(order_id)
    if order.saga_step is not SagaStep.SHIPPING:
        saga.require(order, OrderStatus.SHIPPED)
        now = saga.clock()
        if saga.payment(order).lapsed(now):
            # decided here, before any capture is sent, and only here: the provider said
            # the hold lapses by now, so it is not asked to capture what it will not
            error = PaymentDeclined("the payment authorization expired before shipping",
                                    decline_code=AUTHORIZATION_EXPIRED, order_id=order.id)
            cancel_unpaid(saga, order, str(error))
            raise error
        order = saga.save(order.step(
            SagaStep.SHIPPING, now, shipment=Shipment(carrier, tracking_number, now)))
        saga.notify("shipping", order)
    # else: a shipment whose capture or stock commit was cut short: resume it
    result = saga.advance(order)
    if result.error is not None:
        raise result.error
    return result.order


def settle_shipment(saga: Saga, order: Order, _: Payment | None) -> StepResult:
    """The ``shipping`` step: capture the payment, commit the stock, mark the order shipped.

    Once the order is at this step, a capture may have been sent (its answer lost, or the
    process gone before recording it), so the capture is only ever repeated under the same
    key and the provider's answer believed: a capture made in time is replayed as made,
    however late it is asked again, and the hold's deadline decides nothing here. Only the
    provider's own refusal (the hold lapsed, nothing captured) cancels the order.
    """
    payment = saga.payment(order)
    if payment.status is PaymentStatus.AUTHORIZED:
        try:
            saga.payments.capture(
                authorization_id=payment.provider_id(), amount=payment.authorized,
                idempotency_key=f"{order.id}:capture",
            )
        except PaymentDeclined as exc:
            if exc.decline_code == AUTHORIZATION_EXPIRED:
                # the hold lapsed: this order can no longer be paid; cancel it cleanly
                return StepResult(cancel_unpaid(saga, order, str(exc)), exc)
            # nothing was taken: the order stays confirmed, the shipment is not recorded
            return StepResult(saga.save(order.step(SagaStep.DONE, saga.clock(),
                                                   shipment=None)), exc)
        payment = payment.capture(payment.authorized, saga.clock())
        order = saga.save(order, payment, event="payment.captured", details={
            "captured": {"amount": payment.captured.amount,
                         "currency": payment.captured.currency}})
        saga.notify("payment_captured", order)
    saga.inventory.commit(order.reservation_id)
    saga.notify("stock_committed", order)
    order = saga.save(order.transition(
        OrderStatus.SHIPPED, saga.clock(), saga_step=SagaStep.DONE
    ), event="order.shipped", details={
        "carrier": order.shipment.carrier if order.shipment else None,
        "tracking_number": order.shipment.tracking_number if order.shipment else None})
    saga.notify("shipped", order)
    return StepResult(order)


def deliver(saga: Saga, order_id: str) -> Order:
    """See `Checkout.deliver`."""
    order = saga.load(order_id)
    saga.require(order, OrderStatus.DELIVERED)
    return saga.save(order.transition(OrderStatus.DELIVERED, saga.clock()),
                     event="order.delivered")

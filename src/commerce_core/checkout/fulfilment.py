"""Fulfilment: an order ships in one parcel or several. The first captures the payment whole;
each commits its units of the reserved stock. Delivery closes the order."""

from __future__ import annotations

from collections.abc import Sequence

from commerce_core._validate import Errors, check_identifier, check_text, units_by_sku
from commerce_core.checkout._runner import RETURN_STEPS, Saga, StepResult
from commerce_core.checkout.compensation import cancel_unpaid
from commerce_core.clock import new_id
from commerce_core.errors import (
    ConcurrencyConflict,
    DuplicateParcel,
    PaymentDeclined,
    ShipmentExceedsOrder,
)
from commerce_core.inventory.model import LineRequest
from commerce_core.inventory.services import MAX_QUANTITY
from commerce_core.orders.model import (
    Order,
    OrderStatus,
    SagaStep,
    Shipment,
    ShipmentLine,
)
from commerce_core.payments.model import Payment, PaymentStatus
from commerce_core.payments.ports import AUTHORIZATION_EXPIRED

__all__ = ["deliver", "settle_shipment", "ship"]


def ship(saga: Saga, order_id: str, *, carrier: str, tracking_number: str,
         lines: Sequence[ShipmentLine] | None = None, warehouse: str | None = None) -> Order:
    """See `Checkout.ship`."""
    errors = Errors()
    check_text(errors, "carrier", carrier)
    check_text(errors, "tracking_number", tracking_number)
    if warehouse is not None:
        check_identifier(errors, "warehouse", warehouse)
    wanted = None if lines is None else units_by_sku(errors, lines, ShipmentLine, MAX_QUANTITY)
    errors.raise_if_any("invalid shipment")
    order = saga.load(order_id)
    if order.saga_step in RETURN_STEPS:  # a return's step: finished first
        order = saga.at_rest(order)
    if order.saga_step is SagaStep.SHIPPING:
        # a parcel whose capture or stock commit was cut short (a lost answer, a crash,
        # another admin's parcel still on its way): it is finished first; if it is not this
        # call's own, this call's parcel follows
        pending = order.shipments[-1]
        order = saga.finish(order)
        if _same(pending, carrier, tracking_number, wanted, warehouse):
            return order
    if order.status is OrderStatus.PARTIALLY_SHIPPED and _sent_already(
            order, carrier, tracking_number, wanted, warehouse):
        return order  # this parcel went out already: a request repeated
    # (an order with nothing left refuses any parcel, a repeated one too, as it always did)
    saga.require(order, OrderStatus.SHIPPED)
    parcel = _parcel(saga, order, wanted, warehouse)
    now = saga.clock()
    if saga.payment(order).lapsed(now):
        # decided here, before any capture is sent, and only here: the provider said the
        # hold lapses by now, so it is not asked to capture what it will not
        error = PaymentDeclined("the payment authorization expired before shipping",
                                decline_code=AUTHORIZATION_EXPIRED, order_id=order.id)
        cancel_unpaid(saga, order, str(error))
        raise error
    shipment = Shipment(carrier, tracking_number, now, id=new_id("shp"), lines=parcel,
                        warehouse=warehouse)
    order = saga.save(order.step(SagaStep.SHIPPING, now,
                                 shipments=(*order.shipments, shipment)))
    saga.notify("shipping", order)
    return _finish_parcel(saga, order, shipment.id)


def _finish_parcel(saga: Saga, order: Order, parcel_id: str) -> Order:
    """Run this call's parcel's step. Another command may run it at the same time (an
    admin's next parcel finishes the one before it first) and write before this one: then
    the order is read again, and returned if the parcel went out, or its step run again
    (the capture is repeated under its key, the stock commit is keyed by the parcel) while
    it is still on its way. So the admin whose parcel went out is told it did."""
    for _ in range(5):
        try:
            return saga.finish(order)
        except ConcurrencyConflict:
            order = saga.load(order.id)
            pending = (order.saga_step is SagaStep.SHIPPING
                       and order.shipments[-1].id == parcel_id)
            if not pending:
                if any(parcel.id == parcel_id for parcel in order.shipments):
                    return order
                raise  # the parcel was taken back (the hold lapsed, a decline)
    raise ConcurrencyConflict("order", order.id)


def _same(parcel: Shipment, carrier: str, tracking_number: str,
          wanted: dict[str, int] | None, warehouse: str | None) -> bool:
    """Whether ``parcel`` is the one asked for (without lines: whatever it held)."""
    if (parcel.carrier, parcel.tracking_number, parcel.warehouse) != (
            carrier, tracking_number, warehouse):
        return False
    return wanted is None or not parcel.lines or parcel.units == wanted


def _sent_already(order: Order, carrier: str, tracking_number: str,
                  wanted: dict[str, int] | None, warehouse: str | None) -> bool:
    """A parcel of this carrier and tracking number left already: the same parcel asked
    for again (a retry after a lost answer) is that one; another under its number is
    `DuplicateParcel`. A tracking number names one parcel, so a retried request never
    ships its units twice, with or without an idempotency key."""
    for parcel in order.shipments:
        if (parcel.carrier, parcel.tracking_number) == (carrier, tracking_number):
            if _same(parcel, carrier, tracking_number, wanted, warehouse):
                return True
            raise DuplicateParcel(order.id, carrier, tracking_number)
    return False


def _parcel(saga: Saga, order: Order, wanted: dict[str, int] | None,
            warehouse: str | None) -> tuple[ShipmentLine, ...]:
    """What the parcel holds: ``wanted`` (all that is left when ``None``), checked against
    what the order has left to ship and, from a given warehouse, against what the order's
    reservation holds there (`ShipmentExceedsOrder`). Checked before anything is written,
    so the capture and the stock commit that follow cannot be refused for it."""
    left = order.left_to_ship
    wanted = dict(left) if wanted is None else wanted
    for sku, units in wanted.items():
        if units > left.get(sku, 0):
            raise ShipmentExceedsOrder(sku, units, left.get(sku, 0))
    if warehouse is not None:
        held: dict[str, int] = {}
        for line in saga.inventory.get_reservation(order.reservation_id).outstanding:
            if line.warehouse == warehouse:
                held[line.sku] = held.get(line.sku, 0) + line.quantity
        for sku, units in wanted.items():
            if units > held.get(sku, 0):
                raise ShipmentExceedsOrder(sku, units, held.get(sku, 0), warehouse)
    if not wanted:  # pragma: no cover - an order at rest with nothing left is shipped
        raise ShipmentExceedsOrder("", 0, 0)
    return tuple(ShipmentLine(sku, units) for sku, units in wanted.items())


def settle_shipment(saga: Saga, order: Order, _: Payment | None) -> StepResult:
    """The ``shipping`` step: capture the payment (at the first parcel, whole), commit the
    parcel's stock, count its units shipped: the order is ``shipped`` when nothing is left
    to ship, ``partially_shipped`` until then.

    Once the order is at this step, a capture may have been sent (its answer lost, or the
    process gone before recording it), so the capture is only ever repeated under the same
    key and the provider's answer believed: a capture made in time is replayed as made,
    however late it is asked again, and the hold's deadline decides nothing here. Only the
    provider's own refusal (the hold lapsed, nothing captured) cancels the order.
    """
    shipment = order.shipments[-1]
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
            # nothing was taken: the order stays as it was, the parcel is not recorded
            return StepResult(saga.save(order.step(SagaStep.DONE, saga.clock(),
                                                   shipments=order.shipments[:-1])), exc)
        payment = payment.capture(payment.authorized, saga.clock())
        order = saga.save(order, payment, event="payment.captured", details={
            "captured": {"amount": payment.captured.amount,
                         "currency": payment.captured.currency}})
        saga.notify("payment_captured", order)
    if not shipment.lines:
        # a shipment written by 0.1 (no lines: the whole order)
        shipment = Shipment(shipment.carrier, shipment.tracking_number, shipment.shipped_at,
                            lines=tuple(ShipmentLine(sku, units)
                                        for sku, units in order.left_to_ship.items()))
    lines = order.count_shipped(shipment)
    everything = all(line.left == 0 for line in lines)
    if everything and shipment.warehouse is None:
        saga.inventory.commit(order.reservation_id)
    else:
        saga.inventory.commit_part(
            order.reservation_id, shipment=shipment.id,
            lines=[LineRequest(item.sku, item.quantity) for item in shipment.lines],
            warehouse=shipment.warehouse)
    saga.notify("stock_committed", order)
    status = OrderStatus.SHIPPED if everything else OrderStatus.PARTIALLY_SHIPPED
    now = saga.clock()
    shipped = (order.step(SagaStep.DONE, now, lines=lines) if order.status is status
               else order.transition(status, now, saga_step=SagaStep.DONE, lines=lines))
    order = saga.save(shipped, event=f"order.{status.value}", details={
        "carrier": shipment.carrier, "tracking_number": shipment.tracking_number,
        "shipment_id": shipment.id, "warehouse": shipment.warehouse,
        "shipped": [{"sku": item.sku, "quantity": item.quantity} for item in shipment.lines]})
    saga.notify("shipped", order)
    return StepResult(order)


def deliver(saga: Saga, order_id: str) -> Order:
    """See `Checkout.deliver`."""
    order = saga.load(order_id)
    saga.require(order, OrderStatus.DELIVERED)
    return saga.save(order.transition(OrderStatus.DELIVERED, saga.clock()),
                     event="order.delivered")

"""Returns (RMA): shipped units come back. A customer or an admin requests a return; an admin
receives it into a warehouse (restocking it, or writing it off), then refunds it (the
returned units' share of what was paid, shipping only when asked) or rejects it.

A return lives in its order (`Order.returns`): every change to it is a write of the order,
guarded by the order's version, so returns, parcels and refunds of one order are serialised
by the order itself and no more can be returned than shipped, however many ask at once.
Receiving and refunding reach another store or the provider; each is a saga step
(``receiving_return``, ``refunding_return``) written before it starts, so a crash in the
middle is finished by the same command repeated or by `Checkout.recover`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import attrs

from commerce_core._validate import Errors, check_identifier, check_text, units_by_sku
from commerce_core.checkout._runner import Saga, StepResult
from commerce_core.checkout.refunds import close_refund, settle_share_refund
from commerce_core.errors import (
    ConcurrencyConflict,
    FieldError,
    InvalidInput,
    InvalidTransition,
    ReturnExceedsShipped,
    TooManyReturns,
)
from commerce_core.inventory.services import MAX_QUANTITY
from commerce_core.money import Money
from commerce_core.orders.model import (
    Order,
    Return,
    ReturnLine,
    ReturnStatus,
    SagaStep,
    order_of_return,
)
from commerce_core.orders.shares import shares_of, units_share
from commerce_core.payments.model import Payment

__all__ = ["MAX_RETURNS", "RETURN_REASON", "receive_return",
           "refund_return", "reject_return", "request_return", "return_details",
           "return_share", "settle_receipt", "settle_return_refund"]

#: How many returns one order may have (each holds at least one unit; rejected ones too).
MAX_RETURNS = 50

#: The ledger reason of stock that a return put back.
RETURN_REASON = "return"

#: Concurrent writes of one order a return command absorbs (reading the order again).
_RACES = 5


def return_details(found: Return) -> dict[str, object]:
    """What a return's event carries besides its order: the return as it now stands."""
    def money(value: Money | None) -> dict[str, object] | None:
        return None if value is None else {"amount": value.amount, "currency": value.currency}
    return {"return": {
        "id": found.id, "status": found.status.value, "reason": found.reason,
        "lines": [{"sku": item.sku, "quantity": item.quantity} for item in found.lines],
        "warehouse": found.warehouse, "restock": found.restock,
        "refund": money(found.refund), "include_shipping": found.include_shipping,
        "shipping_refund": money(found.shipping_refund),
        "rejection_reason": found.rejection_reason}}


def request_return(saga: Saga, order_id: str, *, lines: Sequence[ReturnLine], reason: str,
                   customer_id: str | None = None) -> Return:
    """See `Checkout.request_return`."""
    errors = Errors()
    check_text(errors, "reason", reason, max_length=500)
    wanted = units_by_sku(errors, lines, ReturnLine, MAX_QUANTITY)
    errors.raise_if_any("invalid return")
    for _ in range(_RACES):
        order = saga.at_rest(saga.load(order_id, customer_id))
        returnable = order.returnable
        for sku, units in wanted.items():
            if units > returnable.get(sku, 0):
                raise ReturnExceedsShipped(sku, units, returnable.get(sku, 0))
        if len(order.returns) >= MAX_RETURNS:
            raise TooManyReturns(order.id, MAX_RETURNS)
        now = saga.clock()
        found = Return(id=f"ret_{order.id}_{len(order.returns) + 1}", order_id=order.id,
                       lines=tuple(ReturnLine(sku, units) for sku, units in wanted.items()),
                       reason=reason, status=ReturnStatus.REQUESTED, requested_at=now,
                       updated_at=now)
        try:
            # the order's version guards the count: of two requests for the last units,
            # the second reads the order again and finds them returned
            order = saga.save(attrs.evolve(order, returns=order.with_return(found),
                                           updated_at=now),
                              event="return.requested", details=return_details(found))
        except ConcurrencyConflict:
            continue
        saga.notify("return_requested", order)
        return found
    raise ConcurrencyConflict("order", order_id)


def _at_rest(saga: Saga, return_id: str,
             done: Callable[[Return], bool]) -> tuple[Order, Return]:
    """The order of a return, and the return: as it stands if it is ``done`` already (a
    command repeated is answered without waiting for anything), else with another step in
    flight finished first (`Saga.at_rest`)."""
    order = saga.load(order_of_return(return_id))
    found = order.return_of(return_id)
    if done(found):
        return order, found
    order = saga.at_rest(order)
    return order, order.return_of(return_id)


def _resumed(saga: Saga, return_id: str, step: SagaStep) -> tuple[Order, Return] | None:
    """If ``return_id`` is the return whose ``step`` was cut short, that step finished and
    the return as it ended; otherwise ``None``."""
    order = saga.load(order_of_return(return_id))
    pending = order.return_in_flight
    if order.saga_step is not step or pending is None or pending.id != return_id:
        return None
    order = saga.finish(order)
    return order, order.return_of(return_id)


def receive_return(saga: Saga, return_id: str, *, warehouse: str, restock: bool) -> Return:
    """See `Checkout.receive_return`."""
    errors = Errors()
    check_identifier(errors, "warehouse", warehouse)
    given: object = restock  # typed loosely: callers without a type checker pass anything
    if not isinstance(given, bool):
        errors.add("restock", "must be true or false")
    errors.raise_if_any("invalid receipt")
    resumed = _resumed(saga, return_id, SagaStep.RECEIVING_RETURN)
    if resumed is not None and (resumed[1].warehouse, resumed[1].restock) == (warehouse,
                                                                             restock):
        return resumed[1]
    def as_asked(found: Return) -> bool:  # received as asked again (refunded since, maybe)
        return found.received_at is not None and (found.warehouse, found.restock) == (
            warehouse, restock)

    for _ in range(_RACES):
        order, found = _at_rest(saga, return_id, as_asked)
        if as_asked(found):
            return found
        if not found.can_become(ReturnStatus.RECEIVED):
            raise InvalidTransition("return", return_id, found.status,
                                    ReturnStatus.RECEIVED)
        if warehouse not in {w.code for w in saga.inventory.list_warehouses()}:
            # checked before the step is written: a receipt that could never be booked
            # would hold the order at its step
            raise InvalidInput("invalid receipt", [FieldError(
                "warehouse", f"unknown warehouse {warehouse!r}")])
        now = saga.clock()
        receiving = attrs.evolve(found, warehouse=warehouse, restock=restock, updated_at=now)
        try:
            order = saga.save(order.step(SagaStep.RECEIVING_RETURN, now,
                                         returns=order.with_return(receiving)))
        except ConcurrencyConflict:
            continue
        saga.notify("receiving_return", order)
        return saga.finish(order).return_of(return_id)
    raise ConcurrencyConflict("order", order_of_return(return_id))


def _in_flight(order: Order) -> Return:
    """The return the order's step is about (written with the step)."""
    found = order.return_in_flight
    if found is None:  # pragma: no cover - only a row edited by hand
        raise InvalidTransition("order", order.id, order.saga_step, "a return in flight")
    return found


def settle_receipt(saga: Saga, order: Order, _: Payment | None) -> StepResult:
    """The ``receiving_return`` step: put the returned units back on hand in the warehouse
    (ledger reason ``return``, the return's id as the reference, each SKU under a key of its
    own, so a repeat books nothing twice), or write them off (nothing booked); the return is
    then ``received``."""
    found = _in_flight(order)
    if found.restock and found.warehouse is not None:
        for item in found.lines:
            saga.inventory.adjust_stock(
                item.sku, found.warehouse, delta=item.quantity, reason=RETURN_REASON,
                reference=found.id, idempotency_key=f"{found.id}:{item.sku}")
        saga.notify("return_restocked", order)
    now = saga.clock()
    received = attrs.evolve(found, status=ReturnStatus.RECEIVED, received_at=now,
                            updated_at=now)
    order = saga.save(order.step(SagaStep.DONE, now, returns=order.with_return(received)),
                      event="return.received", details=return_details(received))
    saga.notify("return_received", order)
    return StepResult(order)


def return_share(order: Order, found: Return, *, include_shipping: bool) -> tuple[int, int]:
    """What a return is worth, in minor units: its units' share of what was paid (their part
    of the discounts and taxes; `shares_of`) and, when asked, the shipping's share not
    refunded by an earlier return. The units are counted after every unit whose share was
    given back already (the cancelled rest, refunded returns), so that all the units of a
    line never come to more than its share. Returns (all of it, the shipping's part)."""
    shares = shares_of(order)
    refunded = order.refunded_returned()
    wanted = found.units
    lines = 0
    for index, line in enumerate(order.lines):
        units = wanted.get(line.sku, 0)
        if units:
            before = line.cancelled_quantity + refunded.get(line.sku, 0)
            lines += units_share(shares.lines[index], line.quantity, before, units)
    shipping = 0
    if include_shipping:
        given = sum(r.shipping_refund.amount for r in order.returns
                    if r.status is ReturnStatus.REFUNDED and r.shipping_refund is not None)
        shipping = max(shares.charges - given, 0)
    return lines + shipping, shipping


def refund_return(saga: Saga, return_id: str, *, include_shipping: bool = False) -> Return:
    """See `Checkout.refund_return`."""
    given: object = include_shipping
    if not isinstance(given, bool):
        raise InvalidInput("invalid refund", [FieldError("include_shipping",
                                                         "must be true or false")])
    resumed = _resumed(saga, return_id, SagaStep.REFUNDING_RETURN)
    if resumed is not None and _as_asked(resumed[1], include_shipping):
        return resumed[1]
    def made(found: Return) -> bool:  # refunded already, as asked again
        return found.status is ReturnStatus.REFUNDED and _as_asked(found, include_shipping)

    for _ in range(_RACES):
        order, found = _at_rest(saga, return_id, made)
        if made(found):
            return found
        if not found.can_become(ReturnStatus.REFUNDED):
            raise InvalidTransition("return", return_id, found.status,
                                    ReturnStatus.REFUNDED)
        payment = saga.payment(order)
        total, shipping = return_share(order, found, include_shipping=include_shipping)
        # never more than is left of the capture (refunds made in the provider's dashboard)
        total = min(total, payment.refundable.amount)
        now = saga.clock()
        currency = order.currency
        if total > 0:
            payment = payment.request_refund(Money(total, currency), _reason(found), now)
        refunding = attrs.evolve(found, refund=Money(total, currency),
                                 include_shipping=include_shipping,
                                 shipping_refund=Money(min(shipping, total), currency),
                                 updated_at=now)
        try:
            order = saga.save(order.step(SagaStep.REFUNDING_RETURN, now,
                                         returns=order.with_return(refunding)), payment)
        except ConcurrencyConflict:
            continue
        saga.notify("refunding_return", order)
        return saga.finish(order).return_of(return_id)
    raise ConcurrencyConflict("order", order_of_return(return_id))


def _as_asked(found: Return, include_shipping: bool) -> bool:
    """Whether a refunded (or refunding) return was asked for as this refund asks."""
    return found.include_shipping == include_shipping


def _reason(found: Return) -> str:
    return f"return {found.id}"


def settle_return_refund(saga: Saga, order: Order, _: Payment | None) -> StepResult:
    """The ``refunding_return`` step: ask the provider for the return's refund (under the
    refund's own key, written with the step), then record the return ``refunded`` and the
    order ``refunded`` if every captured cent is back. A refusal leaves the return
    ``received`` (an admin may refund it again) and is raised."""
    found = _in_flight(order)
    order, payment, error, refunded = settle_share_refund(saga, order, _reason(found))
    now = saga.clock()
    if error is not None:
        undone = attrs.evolve(found, refund=None, include_shipping=False,
                               shipping_refund=None, updated_at=now)
        order = saga.save(order.step(SagaStep.DONE, now, returns=order.with_return(undone)),
                          payment)
        return StepResult(order, error)
    amount = refunded if refunded is not None else Money(0, order.currency)
    shipping = found.shipping_refund.amount if found.shipping_refund is not None else 0
    done = attrs.evolve(found, status=ReturnStatus.REFUNDED, refund=amount, updated_at=now,
                        shipping_refund=Money(min(shipping, amount.amount), order.currency))
    order = close_refund(saga, attrs.evolve(order, returns=order.with_return(done)), payment,
                         refunded, also=(("return.refunded", return_details(done)),))
    saga.notify("return_refunded", order)
    return StepResult(order)


def reject_return(saga: Saga, return_id: str, *, reason: str | None = None) -> Return:
    """See `Checkout.reject_return`."""
    if reason is not None:
        errors = Errors()
        check_text(errors, "reason", reason, max_length=500)
        errors.raise_if_any("invalid rejection")
    def refused(found: Return) -> bool:
        return found.status is ReturnStatus.REJECTED

    for _ in range(_RACES):
        order, found = _at_rest(saga, return_id, refused)
        if refused(found):
            return found  # rejected already
        if not found.can_become(ReturnStatus.REJECTED):
            raise InvalidTransition("return", return_id, found.status,
                                    ReturnStatus.REJECTED)
        now = saga.clock()
        rejected = attrs.evolve(found, status=ReturnStatus.REJECTED, rejection_reason=reason,
                                updated_at=now)
        try:
            order = saga.save(attrs.evolve(order, returns=order.with_return(rejected),
                                           updated_at=now),
                              event="return.rejected", details=return_details(rejected))
        except ConcurrencyConflict:
            continue
        saga.notify("return_rejected", order)
        return rejected
    raise ConcurrencyConflict("order", order_of_return(return_id))

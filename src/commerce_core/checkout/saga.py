"""The checkout: place, cancel, ship, deliver and refund orders across the two stores and
the payment provider, with progress persisted so that any step can be resumed.

`Checkout` is the facade; each command family lives in a module of its own (`placing`,
`compensation`, `fulfilment`, `refunds`, `returns`, `recovery`), and `_runner.Saga` drives an order
through the steps they register.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from commerce_core._validate import Errors
from commerce_core.checkout import (
    compensation,
    fulfilment,
    placing,
    recovery,
    refunds,
    returns,
)
from commerce_core.checkout._runner import CHECKOUT_STEPS, Answer, Saga, Step, StepHook
from commerce_core.checkout.commands import CheckoutLimits, PlaceOrder, QuoteOrder
from commerce_core.checkout.placing import CheckoutFailed, Quote
from commerce_core.checkout.recovery import (
    NotificationOutcome,
    RecoveryFailure,
    RecoveryReport,
)
from commerce_core.clock import Clock, system_clock
from commerce_core.errors import CommerceError, FieldError
from commerce_core.inventory.services import InventoryService
from commerce_core.money import Money
from commerce_core.orders.model import (
    Order,
    OrderStatus,
    Return,
    ReturnLine,
    SagaStep,
    ShipmentLine,
)
from commerce_core.orders.ports import OrderStore
from commerce_core.payments.model import PaymentNotification
from commerce_core.payments.services import PaymentService
from commerce_core.pricing.ports import PricingPolicy
from commerce_core.retry import RetryPolicy
from commerce_core.telemetry import Telemetry, Timer

__all__ = ["Checkout", "CheckoutFailed", "NotificationOutcome", "Quote", "RecoveryFailure",
           "RecoveryReport", "StepHook"]

#: What runs at each step of the saga.
STEPS: dict[SagaStep, Step] = {
    **dict.fromkeys(CHECKOUT_STEPS, placing.check_out),
    SagaStep.COMPENSATING: compensation.compensate,
    SagaStep.SHIPPING: fulfilment.settle_shipment,
    SagaStep.CANCELLING_REST: compensation.settle_cancelled_rest,
    SagaStep.REFUNDING: refunds.settle_refund,
    SagaStep.RECEIVING_RETURN: returns.settle_receipt,
    SagaStep.REFUNDING_RETURN: returns.settle_return_refund,
}


class Checkout(Saga):
    """The orchestrator of every command that spans the order store, the inventory store and
    the payment provider.

    Each step is one local transaction or one provider call, and the order records how far
    it got (its ``saga_step``) where recovery needs it, so a crash anywhere leaves an order
    that `recover()` drives to a consistent end: forward where every remaining step is
    idempotent, back (release the stock, void the payment) where a step failed. Repeating
    a command whose step was cut short (the provider down) resumes it.
    """

    def __init__(
        self, *, orders: OrderStore, inventory: InventoryService, payments: PaymentService,
        clock: Clock = system_clock, reservation_ttl: timedelta = timedelta(minutes=15),
        on_step: StepHook | None = None, store_retry: RetryPolicy | None = None,
        limits: CheckoutLimits | None = None, failed_order_retention: timedelta | None = None,
        idempotency_retention: timedelta | None = None, pricing: PricingPolicy | None = None,
        telemetry: Telemetry | None = None,
    ) -> None:
        super().__init__(order_store=orders, inventory=inventory, payments=payments,
                         steps=STEPS, clock=clock, reservation_ttl=reservation_ttl,
                         on_step=on_step, store_retry=store_retry, limits=limits,
                         failed_order_retention=failed_order_retention,
                         idempotency_retention=idempotency_retention, pricing=pricing,
                         telemetry=telemetry)

    def quote(self, command: QuoteOrder) -> Quote:
        """Price an order exactly as `place_order` would price it now, reserving and
        redeeming nothing: for a storefront to show the totals before payment.

        Raises what placing would before anything is written: `InvalidInput` (an unknown
        SKU, a shipping option that does not fit, more units than `CheckoutLimits` allow, a
        total of 0), `TooManyOpenOrders`, `VoucherNotApplicable` (a voucher used up, or
        already used by this customer, as far as can be told now: placing decides that
        again, atomically; ``covers-total``: it would leave nothing to pay),
        `PricingUnavailable`."""
        return placing.quote(self, command)

    def sku_problems(self, lines: Sequence[object]) -> list[FieldError]:
        """The problems of these lines' SKUs (each an object with a ``sku``; the malformed
        are skipped): unknown, or not for sale, each at ``lines[i].sku``. For a driving
        adapter that found other problems in a request first, to name them all at once."""
        errors = Errors()
        placing.unknown_skus(self, lines, errors)
        return list(errors.items)

    def place_order(self, command: PlaceOrder, *, idempotency_key: str,
                    answer: Answer | None = None) -> Order:
        """Reserve stock, authorize payment and confirm the order, or fail it cleanly.

        The key is scoped to the customer. The same key with the same command returns the
        same result (the order, or the same error); with another command it raises
        `IdempotencyKeyReused`; while the first is still running, `IdempotencyKeyInUse`.
        A failed checkout raises `InsufficientStock`, `PaymentDeclined` or
        `PaymentUnavailable`, carrying the failed order's id.

        The order is priced by the checkout's `PricingPolicy` (shipping, discounts, taxes);
        its payment authorizes exactly its `Order.total`. A voucher's use is taken in the
        transaction that creates the order (`VoucherNotApplicable` if it was used up
        meanwhile, nothing written) and given back if the order fails or is cancelled. An
        order whose total comes to 0 is refused before anything is written (there is
        nothing to authorize): `VoucherNotApplicable` (``covers-total``) when a voucher
        brought it there, `InvalidInput` on ``lines`` otherwise.

        One that failed only because the provider was unavailable, with nothing held or
        charged, is tried again (as a new order) when its key comes again.

        ``answer``: how the host answers the request once the order is confirmed (an HTTP
        status and body, made from the confirmed order and its payment). It is called in
        the transaction that confirms the order, and what it returns is stored in the key's
        record there, as `OrderService.save_response` would store it with a transaction of
        its own (the gateway does this: a place-order request writes its answer with the
        order). It is not called for a checkout that fails or for a repeat; an answer that
        raises is logged and not stored, and the order is confirmed all the same.
        """
        timer = Timer()
        outcome = "error"
        with self.telemetry.span("checkout.place_order", {}):
            try:
                order = placing.place_order(self, command, idempotency_key, answer)
                outcome = ("confirmed" if order.status is OrderStatus.CONFIRMED
                           else order.status.value)
                return order
            except CommerceError as error:
                outcome = error.code
                raise
            finally:  # inside the span: a tracer sets the outcome on it
                self.telemetry.record("checkout", seconds=timer.seconds, outcome=outcome)

    def cancel(self, order_id: str, *, customer_id: str | None = None) -> Order:
        """Cancel a confirmed order: release its stock and void its payment (refund it, if
        the provider had captured it).

        On a ``partially_shipped`` order, cancel what has not shipped: its units are
        counted cancelled, the order becomes ``shipped``, their stock is released and
        their share of what was paid (their part of the discounts and taxes; no shipping)
        refunded. A refund the provider cannot take now is finished by the same cancel
        repeated or by `recover()`.

        If the provider cannot take the void now, the order is cancelled, its stock
        released, and `PaymentUnavailable` raised: the same cancel repeated (or `recover()`)
        finishes it. A refund of a captured payment that the provider refuses raises
        `PaymentDeclined`, the order cancelled."""
        return compensation.cancel(self, order_id, customer_id)

    def ship(self, order_id: str, *, carrier: str, tracking_number: str,
             lines: Sequence[ShipmentLine] | None = None,
             warehouse: str | None = None) -> Order:
        """Send a parcel: ``lines`` (all that is left to ship when ``None``), from
        ``warehouse`` (``None``: wherever the order's stock is reserved). The parcel is
        added to the order's ``shipments``; its units are counted shipped and their stock
        committed; the order is ``shipped`` once nothing is left to ship,
        ``partially_shipped`` until then. More than is left (or than the order's stock
        in that warehouse) raises `ShipmentExceedsOrder`, nothing changed.

        The first parcel captures the whole payment (see the architecture's "Shipping in
        parts"). A hold past its ``capture_before`` is not captured: the order is cancelled
        and `PaymentDeclined` (``authorization_expired``) raised. If the capture is declined
        the order stays as it was and the error is raised; if the provider is unavailable
        the shipment stays in progress (``saga_step`` ``shipping``) and a later ``ship`` or
        `recover()` finishes it, repeating the capture under its key, whatever the time.
        """
        return fulfilment.ship(self, order_id, carrier=carrier,
                               tracking_number=tracking_number, lines=lines,
                               warehouse=warehouse)

    def deliver(self, order_id: str) -> Order:
        """Mark a shipped order delivered."""
        return fulfilment.deliver(self, order_id)

    def refund(self, order_id: str, *, amount: Money | None = None, reason: str,
               idempotency_key: str | None = None) -> Order:
        """Refund part (``amount``) or all of what was captured and not refunded yet; a full
        refund ends in ``refunded``.

        Repeated partial refunds are allowed; their sum never exceeds the capture
        (`RefundExceedsCaptured`). Under an ``idempotency_key`` the same refund asked for
        again is made once (the repeat returns the order, or raises the refusal again); the
        key with another refund raises `IdempotencyKeyReused`. A refund the provider
        refuses raises `PaymentDeclined` and leaves the order as it was, ready for another
        refund; any refunds made outside the library that the refusal reveals are recorded.
        """
        return refunds.refund(self, order_id, amount=amount, reason=reason,
                              idempotency_key=idempotency_key)

    def request_return(self, order_id: str, *, lines: Sequence[ReturnLine], reason: str,
                       customer_id: str | None = None) -> Return:
        """Ask to send back shipped units (``lines``) for ``reason``: a new return,
        ``requested``, in the order's `Order.returns` (an ``return.requested`` event).

        ``customer_id``: only of that customer's order (another's is `NotFound`). More
        units of a SKU than the order shipped and has not had returned raises
        `ReturnExceedsShipped`; an order with `returns.MAX_RETURNS` returns,
        `TooManyReturns`; nothing changed either way. Two requests for the same last units
        at once: one is made, the other raises `ReturnExceedsShipped`."""
        return returns.request_return(self, order_id, lines=lines, reason=reason,
                                      customer_id=customer_id)

    def receive_return(self, return_id: str, *, warehouse: str, restock: bool) -> Return:
        """The return's goods arrived at ``warehouse``: with ``restock``, its units go back
        on hand there (ledger reason ``return``, the return's id as the reference); without,
        they are written off. The return is ``received`` (a ``return.received`` event).

        The same receipt again returns the return as it is; another, or a return rejected
        or refunded, raises `InvalidTransition`; an unknown warehouse `InvalidInput`. A
        crash between booking the stock and recording the receipt is finished by the same
        call or by `recover()`, booking nothing twice."""
        return returns.receive_return(self, return_id, warehouse=warehouse, restock=restock)

    def refund_return(self, return_id: str, *, include_shipping: bool = False) -> Return:
        """Refund a received return its units' share of what was paid: their part of the
        discounts and taxes included (`commerce_core.orders.shares`), and the shipping's
        share when ``include_shipping`` (once per order), never more than is left of the
        capture. The return is ``refunded`` with its ``refund`` (a ``return.refunded``
        event), the order ``refunded`` when every captured cent is back.

        The same refund again returns the return as it is (refunding nothing twice); a
        return not received raises `InvalidTransition`. A refund the provider refuses
        raises `PaymentDeclined`, the return left ``received``; one it cannot take now
        raises `PaymentUnavailable`, finished by the same call or `recover()`."""
        return returns.refund_return(self, return_id, include_shipping=include_shipping)

    def reject_return(self, return_id: str, *, reason: str | None = None) -> Return:
        """Refuse a return, ``requested`` or ``received`` (goods received stay counted as
        returned: restocked or written off as received): ``rejected`` (a
        ``return.rejected`` event). Rejecting it again returns it; a refunded one raises
        `InvalidTransition`."""
        return returns.reject_return(self, return_id, reason=reason)

    def recover(
        self, *, grace: timedelta = timedelta(seconds=60), limit: int = 100
    ) -> RecoveryReport:
        """Drive every unfinished saga last touched more than ``grace`` ago to a consistent end,
        then expire stale reservations (and, with a ``failed_order_retention``, delete the
        failed checkouts older than it, with their idempotency records; with an
        ``idempotency_retention``, the records of requests that made no order older than it).

        Safe to run at any time and from several processes: each step is idempotent and
        every write is guarded by the order's version. An order whose step raises is
        logged and reported (`RecoveryReport.failed`) and the sweep goes on; reservations
        are expired whatever happened to the orders. Run it at start-up and periodically.
        """
        report = recovery.recover(self, grace=grace, limit=limit)
        for result, count in (("finished", len(report.finished)),
                              ("unfinished", len(report.unfinished)),
                              ("failed", len(report.failed))):
            if count:
                self.telemetry.record("recovery", count=count, result=result)
        if report.expired_reservations:
            self.telemetry.record("reservations_expired", count=report.expired_reservations)
        return report

    def apply_notification(
        self, notification: PaymentNotification, *, grace: timedelta = timedelta(seconds=10),
    ) -> NotificationOutcome:
        """Apply a provider's event (a verified webhook) once, idempotently.

        An event seen before is a `DUPLICATE`. One whose authorization id, amount or
        currency does not match the order's payment is recorded and ignored
        (`MISMATCHED`). A lapsed hold on a confirmed order cancels the order, releasing its
        stock; a refund made outside the library is recorded on the payment; an order whose
        saga stalled (untouched for ``grace``: a crash, a lost response) is driven to its
        end now rather than at the next recovery sweep. Anything else the order already
        accounts for. The event is recorded after it was acted on, so a crash in between
        repeats the (idempotent) action on the next delivery instead of skipping it.
        """
        return recovery.apply_notification(self, notification, grace=grace)

"""What every checkout command shares: the stores, the provider, the clock, the order's
durable writes, and `Saga.advance`, which runs an order's remaining steps."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from datetime import timedelta
from typing import TypeVar

import attrs

from commerce_core.checkout.commands import CheckoutLimits
from commerce_core.clock import Clock, system_clock
from commerce_core.errors import (
    CommerceError,
    ConcurrencyConflict,
    InvalidTransition,
    NotFound,
    PaymentUnavailable,
)
from commerce_core.inventory.services import InventoryService
from commerce_core.orders.events import order_event
from commerce_core.orders.model import IdempotencyRecord, Order, OrderStatus, SagaStep
from commerce_core.orders.ports import OrderStore, OrderUnitOfWork
from commerce_core.payments.model import Payment
from commerce_core.payments.services import PaymentService
from commerce_core.pricing.ports import LinesOnly, PricingPolicy, VoucherUse
from commerce_core.retry import RetryPolicy, retry_transactions
from commerce_core.telemetry import Telemetry, Timer, guarded, order_context

__all__ = ["CHECKOUT_STEPS", "RETURN_STEPS", "STEP_GRACE", "Saga", "Step", "StepHook",
           "StepResult", "order_event", "stamped"]

log = logging.getLogger("commerce_core.checkout")

#: Called after every durable step with the step's name and the order as it then stands.
#: For tracing and metrics; the tests use it to inject crashes between steps.
StepHook = Callable[[str, Order], None]


@attrs.frozen
class StepResult:
    """What a saga step did: the order as it now stands, and the error that made the
    command fail in this step, if one did (the saga then goes on: compensation)."""

    order: Order
    error: CommerceError | None = None


#: One step of the saga: from the order at its ``saga_step`` (and its payment, if the caller
#: has it at hand) to the order at its next step.
Step = Callable[["Saga", Order, "Payment | None"], StepResult]

E = TypeVar("E", bound=CommerceError)


def stamped(error: E, order_id: str) -> E:
    """``error`` naming the order it is about (the one place an error gets its order id)."""
    if error.order_id is None:
        error.order_id = order_id
    return error


#: What a host makes of a confirmed checkout, to answer the request with: an HTTP status and
#: body, say (`Checkout.place_order`'s ``answer``).
Answer = Callable[[Order, Payment], tuple[int, str]]


@attrs.frozen
class Answering:
    """A host's answer to the checkout of ``order_id``, to be stored under its idempotency
    key (``scope``, ``key``) in the transaction that confirms the order."""

    order_id: str
    scope: str
    key: str
    answer: Answer


#: Set by `place_order` while it drives its own order: the confirming write stores the answer.
ANSWERING: ContextVar[Answering | None] = ContextVar("commerce_core_answering", default=None)


class Saga:
    """The collaborators and durable writes of the checkout saga, and the loop that drives
    an order through its steps (``steps``: what to run at each `SagaStep`)."""

    def __init__(
        self, *, order_store: OrderStore, inventory: InventoryService,
        payments: PaymentService, steps: Mapping[SagaStep, Step], clock: Clock = system_clock,
        reservation_ttl: timedelta = timedelta(minutes=15), on_step: StepHook | None = None,
        store_retry: RetryPolicy | None = None, limits: CheckoutLimits | None = None,
        failed_order_retention: timedelta | None = None,
        idempotency_retention: timedelta | None = None, pricing: PricingPolicy | None = None,
        telemetry: Telemetry | None = None,
    ) -> None:
        self.order_store = order_store
        self.telemetry: Telemetry = guarded(telemetry)
        self.pricing: PricingPolicy = pricing or LinesOnly()
        self.limits = limits or CheckoutLimits()
        self.failed_order_retention = failed_order_retention
        self.idempotency_retention = idempotency_retention
        self.store_retry = store_retry or RetryPolicy.for_store()
        self.inventory = inventory
        self.payments = payments
        self.clock = clock
        self.reservation_ttl = reservation_ttl
        self.on_step = on_step
        self.steps = dict(steps)
        #: how long a step in flight is left to the process running it before another
        #: command finishes it (`at_rest`)
        self.step_grace = STEP_GRACE

    def advance(self, order: Order, payment: Payment | None = None) -> StepResult:
        """Run the order's remaining steps. The result's error is the first one that made
        the command fail on the way (its order id stamped). Stops early, resumable, when the
        provider stays unavailable; anything else a step raises propagates (recovery reports
        it). ``payment`` is the order's payment as the caller has it (saves reading it)."""
        with order_context(order.id):
            return self._advance(order, payment)

    def _advance(self, order: Order, payment: Payment | None) -> StepResult:
        error: CommerceError | None = None
        while not order.finished:
            step = order.saga_step
            timer = Timer()
            try:
                with self.telemetry.span("saga.step", {"saga.step": step.value}):
                    try:
                        result = self.steps[step](self, order, payment)
                    finally:  # whatever the step did, inside its span
                        self.telemetry.record("saga_step", seconds=timer.seconds,
                                              step=step.value)
            except PaymentUnavailable as exc:
                log.warning("order %s: provider unavailable at step %s; resumable: %s",
                            order.id, step, exc)
                return StepResult(order, error or stamped(exc, order.id))
            order = result.order
            if error is None and result.error is not None:
                error = stamped(result.error, order.id)
            payment = None  # written by the step: read it again if another step needs it
        return StepResult(order, error)

    def finish(self, order: Order) -> Order:
        """The order with its remaining steps run (`advance`), or the error that made the
        command fail on the way raised (its order id stamped)."""
        result = self.advance(order)
        if result.error is not None:
            raise result.error
        return result.order

    # -- reads -------------------------------------------------------------------------------

    def load(self, order_id: str, customer_id: str | None = None) -> Order:
        if not isinstance(order_id, str) or not order_id.isprintable():
            raise NotFound("order", repr(order_id))  # no order has such an id
        with self.order_store.unit_of_work() as uow:
            order = uow.orders.get(order_id)
        if order is None or (customer_id is not None and order.customer_id != customer_id):
            raise NotFound("order", order_id)
        return order

    def payment(self, order: Order) -> Payment:
        with self.order_store.unit_of_work() as uow:
            payment = uow.payments.get(order.payment_id) if order.payment_id else None
        if payment is None:  # pragma: no cover - created with the order
            raise NotFound("payment", str(order.payment_id))
        return payment

    def at_rest(self, order: Order) -> Order:
        """The order with another command's step in flight finished first, so that a
        command never writes in the middle of it.

        A step touched within ``step_grace`` is left to the process running it:
        `ConcurrencyConflict` (try again in a moment). An older one (its process crashed,
        or the provider was down) is finished here, as recovery would; what that step
        ran into (a refund the provider refused) is that step's outcome, logged, not the
        caller's. If the provider is still down, `PaymentUnavailable`, nothing changed."""
        for _ in range(3):
            if order.finished:
                return order
            if self.clock() - order.updated_at < self.step_grace:
                raise ConcurrencyConflict("order", order.id)
            try:
                result = self.advance(order)
            except ConcurrencyConflict:  # another process finished it meanwhile
                order = self.load(order.id)
                continue
            if not result.order.finished:
                raise result.error or ConcurrencyConflict("order", order.id)
            if result.error is not None:
                log.warning("order %s: the step finished before this command ended with: %s",
                            order.id, result.error)
            return result.order
        raise ConcurrencyConflict("order", order.id)

    @staticmethod
    def require(order: Order, status: OrderStatus) -> None:
        """The order is at rest and may move to ``status``, or `InvalidTransition`."""
        if not order.finished or not order.can_become(status):
            raise InvalidTransition("order", order.id, order.status, status)

    # -- writes ------------------------------------------------------------------------------

    @retry_transactions
    def create(self, record: IdempotencyRecord, order: Order, payment: Payment, *,
               replacing: IdempotencyRecord | None = None,
               voucher: VoucherUse | None = None) -> bool:
        """The pending order, its payment, its idempotency key and its voucher's use, in one
        transaction. ``replacing``: a record of an attempt given up, to be replaced by this
        one; false if it changed meanwhile (another retry replaced it first), and nothing is
        written. A voucher used up meanwhile raises `VoucherNotApplicable`, nothing written."""
        with self.order_store.unit_of_work() as uow:
            if replacing is not None and not uow.idempotency.discard(
                    replacing.scope, replacing.key, created_at=replacing.created_at):
                return False
            uow.idempotency.add(record)
            uow.orders.add(order)
            uow.payments.add(payment)
            if voucher is not None:
                uow.redemptions.redeem(
                    voucher.code, order_id=order.id, customer_id=order.customer_id,
                    usage_limit=voucher.usage_limit,
                    once_per_customer=voucher.once_per_customer, at=order.created_at)
            uow.outbox.add([order_event("order.placed", order, order.created_at)])
            uow.commit()
        return True

    @retry_transactions
    def save(
        self, order: Order, payment: Payment | None = None, *, event: str | None = None,
        details: dict[str, object] | None = None,
        also: tuple[tuple[str, dict[str, object]], ...] = (),
        answering: Answering | None = None,
    ) -> Order:
        """Write the order (and its payment), and the event the change is, if it is one (and
        the events ``also`` names, with their details), in one transaction on the order
        store; an order that fails or is cancelled gives its voucher's use back in it. With
        ``answering`` (of this order) and a payment, the host's answer is stored under the
        key in the same transaction."""
        with self.order_store.unit_of_work() as uow:
            saved = uow.orders.update(order)
            if order.gives_back_voucher:
                uow.redemptions.release(order.id)
            if payment is not None:
                saved_payment = uow.payments.update(payment)
                if answering is not None and answering.order_id == order.id:
                    _store_answer(uow, answering, saved, saved_payment)
            events = ((event, details or {}),) if event is not None else ()
            if events or also:
                uow.outbox.add([order_event(name, saved, saved.updated_at, **extra)
                                for name, extra in (*events, *also)])
            uow.commit()
        return saved

    def notify(self, step: str, order: Order) -> None:
        if self.on_step is not None:
            self.on_step(step, order)


def _store_answer(uow: OrderUnitOfWork, answering: Answering, order: Order,
                  payment: Payment) -> None:
    """The host's answer under the key, where `OrderService.save_response` would put it. An
    answer the host fails to make is not stored (logged): the order is confirmed all the
    same, and the host answers, and stores, as it would without."""
    try:
        status, body = answering.answer(order, payment)
        if type(status) is not int or not isinstance(body, str):
            raise TypeError(f"an answer is (int, str), not ({type(status).__name__}, "
                            f"{type(body).__name__})")
    except Exception:
        log.exception("order %s: the host's answer could not be made; not stored with it",
                      order.id)
        return
    uow.idempotency.save_response(answering.scope, answering.key, status, body)


#: How long a step in flight is left to its process before another command finishes it.
STEP_GRACE = timedelta(seconds=10)

#: The steps of a return (`returns`): other commands finish them first (`Saga.at_rest`).
RETURN_STEPS = frozenset({SagaStep.RECEIVING_RETURN, SagaStep.REFUNDING_RETURN})

#: The saga steps of a checkout in progress (``reserved`` and ``authorized`` only in 0.1's
#: rows).
CHECKOUT_STEPS = frozenset({SagaStep.STARTED, SagaStep.RESERVED, SagaStep.AUTHORIZED})

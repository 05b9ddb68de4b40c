"""The checkout saga: place, cancel, ship, deliver and refund orders across the two stores
and the payment provider, with progress persisted step by step so any step can be resumed."""

from __future__ import annotations

import contextlib
import enum
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

import attrs

from commerce_core._validate import Errors, check_instance, check_text
from commerce_core.checkout.commands import PlaceOrder, check_idempotency_key
from commerce_core.clock import Clock, new_id, system_clock
from commerce_core.errors import (
    CommerceError,
    ConcurrencyConflict,
    Conflict,
    CurrencyMismatch,
    IdempotencyKeyInUse,
    IdempotencyKeyReused,
    InsufficientStock,
    InvalidTransition,
    NotFound,
    PaymentDeclined,
    PaymentUnavailable,
)
from commerce_core.events import DomainEvent
from commerce_core.inventory.model import LineRequest
from commerce_core.inventory.services import InventoryService, ReservationExpired
from commerce_core.money import Money
from commerce_core.orders.model import (
    IdempotencyRecord,
    Order,
    OrderLine,
    OrderStatus,
    SagaStep,
    Shipment,
)
from commerce_core.orders.ports import OrderStore
from commerce_core.payments.model import (
    NotificationKind,
    Payment,
    PaymentNotification,
    PaymentStatus,
)
from commerce_core.payments.services import PaymentService
from commerce_core.retry import RetryPolicy, retry_transactions

__all__ = ["Checkout", "CheckoutFailed", "NotificationOutcome", "RecoveryReport", "StepHook"]

#: The decline code of a capture refused because the hold lapsed.
AUTHORIZATION_EXPIRED = "authorization_expired"

log = logging.getLogger("commerce_core.checkout")

#: Called after every durable step with the step's name and the order as it then stands.
#: For tracing and metrics; the tests use it to inject crashes between steps.
StepHook = Callable[[str, Order], None]


class CheckoutFailed(CommerceError):
    """A checkout failed for a reason other than stock or payment (replayed from the order)."""

    def __init__(self, code: str, detail: str, *, order_id: str) -> None:
        super().__init__(code, detail)
        self.code = code  # the instance carries the stored reason
        self.detail = detail
        self.order_id = order_id

    def __str__(self) -> str:
        return self.detail


@attrs.frozen
class RecoveryReport:
    """What `recover()` did."""

    examined: int
    finished: tuple[str, ...]
    unfinished: tuple[str, ...]
    expired_reservations: int


class NotificationOutcome(enum.StrEnum):
    """What `Checkout.apply_notification` did with a provider's event."""

    DUPLICATE = "duplicate"  # applied before: nothing done
    UNKNOWN_ORDER = "unknown_order"  # not a payment of ours: recorded, nothing done
    CANCELLED = "cancelled"  # the hold lapsed: the order was cancelled, its stock released
    ADVANCED = "advanced"  # a stalled saga was driven to its end
    NOTED = "noted"  # the order already accounts for it


#: The steps of a checkout in progress (``reserved`` and ``authorized`` only in 0.1's rows).
_CHECKOUT_STEPS = frozenset({SagaStep.STARTED, SagaStep.RESERVED, SagaStep.AUTHORIZED})


def _failure_error(order: Order) -> CommerceError:
    """The error a failed checkout raised, rebuilt from the order for an idempotent replay."""
    reason = order.failure_reason or "failed"
    detail = order.failure_detail or reason
    if reason == InsufficientStock.code:
        error: CommerceError = InsufficientStock((), order_id=order.id)
    elif reason == PaymentDeclined.code:
        error = PaymentDeclined(detail, order_id=order.id)
    elif reason == PaymentUnavailable.code:
        error = PaymentUnavailable(detail, order_id=order.id)
    else:
        error = CheckoutFailed(reason, detail, order_id=order.id)
    return error


def order_event(type_: str, order: Order, at: datetime, **extra: object) -> DomainEvent:
    """An event of the order aggregate; ``sequence`` is the order's version after the change."""
    total = order.total
    return DomainEvent.new(
        type_, aggregate_type="order", aggregate_id=order.id, sequence=order.version, at=at,
        payload={
            "order_id": order.id, "customer_id": order.customer_id,
            "status": order.status.value,
            "total": {"amount": total.amount, "currency": total.currency},
            "lines": [{"sku": line.sku, "quantity": line.quantity} for line in order.lines],
            **extra,
        },
    )


class Checkout:
    """The orchestrator of every command that spans the order store, the inventory store and
    the payment provider.

    Each step is one local transaction, and the order records how far it got (its
    ``saga_step``) before the next step starts, so a crash anywhere leaves an order that
    `recover()` drives to a consistent end: forward where every remaining step is
    idempotent, back (release the stock, void the payment) where a step failed.
    """

    def __init__(
        self, *, orders: OrderStore, inventory: InventoryService, payments: PaymentService,
        clock: Clock = system_clock, reservation_ttl: timedelta = timedelta(minutes=15),
        on_step: StepHook | None = None, store_retry: RetryPolicy | None = None,
    ) -> None:
        self.orders = orders
        self.store_retry = store_retry or RetryPolicy.for_store()
        self.inventory = inventory
        self.payments = payments
        self.clock = clock
        self.reservation_ttl = reservation_ttl
        self.on_step = on_step

    # -- public commands -------------------------------------------------------------------

    def place_order(self, command: PlaceOrder, *, idempotency_key: str) -> Order:
        """Reserve stock, authorize payment and confirm the order, or fail it cleanly.

        The key is scoped to the customer. The same key with the same command returns the
        same result (the order, or the same error); with another command it raises
        `IdempotencyKeyReused`; while the first is still running,
        `IdempotencyKeyInUse`. A failed checkout raises
        `InsufficientStock`,
        `PaymentDeclined` or
        `PaymentUnavailable`, carrying the failed order's id.
        """
        check_idempotency_key(idempotency_key)
        command.validate()
        fingerprint = command.fingerprint()
        try:
            lines = self._price(command)
        except CommerceError:
            # a replay answers as the first request did, even if the catalogue changed since
            replayed = self._replay(command.customer_id, idempotency_key, fingerprint)
            if replayed is not None:
                return replayed
            raise
        now = self.clock()
        order = Order.place(
            id=new_id("ord"), customer_id=command.customer_id, lines=lines,
            shipping_address=command.shipping_address, payment_token=command.payment_token,
            at=now,
        )
        payment = Payment.start(id=new_id("pay"), order_id=order.id, amount=order.total, at=now)
        order = attrs.evolve(order, payment_id=payment.id)
        try:
            # optimistic: a new key is the common case, so the key is not looked up first;
            # the key's primary key turns a repeat (or a concurrent duplicate) into a Conflict
            self._create(IdempotencyRecord(
                command.customer_id, idempotency_key, fingerprint, order.id, now
            ), order, payment)
        except Conflict:
            # the key was used before, or another request under it won the race: answer as
            # that one did (its result, `IdempotencyKeyReused`, or `IdempotencyKeyInUse`)
            replayed = self._replay(command.customer_id, idempotency_key, fingerprint)
            if replayed is None:  # pragma: no cover - the conflicting record is committed
                raise
            return replayed
        self._notify("started", order)
        order, error = self._advance(order, payment)
        if error is not None:
            raise error
        if order.status is not OrderStatus.CONFIRMED:
            raise _failure_error(order)
        return order

    def cancel(self, order_id: str, *, customer_id: str | None = None) -> Order:
        """Cancel a confirmed order: release its stock and void its payment."""
        order = self._load(order_id, customer_id)
        self._require(order, OrderStatus.CANCELLED)
        order = self._save(order.transition(
            OrderStatus.CANCELLED, self.clock(), saga_step=SagaStep.COMPENSATING
        ), event="order.cancelled")
        self._notify("cancelling", order)
        order, _ = self._advance(order)
        return order

    def ship(self, order_id: str, *, carrier: str, tracking_number: str) -> Order:
        """Capture the payment, commit the reserved stock and mark the order shipped.

        If the capture is declined the order stays ``confirmed`` and the error is raised; if
        the provider is unavailable the shipment stays in progress (``saga_step`` ``shipping``)
        and a later ``ship`` or `recover()` finishes it.
        """
        errors = Errors()
        check_text(errors, "carrier", carrier)
        check_text(errors, "tracking_number", tracking_number)
        errors.raise_if_any("invalid shipment")
        order = self._load(order_id)
        if order.saga_step is not SagaStep.SHIPPING:
            self._require(order, OrderStatus.SHIPPED)
            order = self._save(order.step(
                SagaStep.SHIPPING, self.clock(),
                shipment=Shipment(carrier, tracking_number, self.clock()),
            ))
            self._notify("shipping", order)
        order, error = self._advance(order)
        if error is not None:
            raise error
        return order

    def deliver(self, order_id: str) -> Order:
        """Mark a shipped order delivered."""
        order = self._load(order_id)
        self._require(order, OrderStatus.DELIVERED)
        return self._save(order.transition(OrderStatus.DELIVERED, self.clock()),
                          event="order.delivered")

    def refund(self, order_id: str, *, amount: Money | None = None, reason: str) -> Order:
        """Refund part or all of what was captured; a full refund ends in ``refunded``.

        Repeated partial refunds are allowed; their sum never exceeds the capture
        (`RefundExceedsCaptured`).
        """
        errors = Errors()
        check_text(errors, "reason", reason)
        if amount is not None:
            check_instance(errors, "amount", amount, Money, "Money")
        errors.raise_if_any("invalid refund")
        order = self._load(order_id)
        if order.status not in (OrderStatus.SHIPPED, OrderStatus.DELIVERED) or not order.finished:
            raise InvalidTransition("order", order.id, order.status, OrderStatus.REFUNDED)
        payment = self._payment(order)
        wanted = amount if amount is not None else payment.refundable
        if wanted.currency != payment.amount.currency:
            raise CurrencyMismatch(wanted.currency, payment.amount.currency)
        now = self.clock()
        payment = payment.request_refund(wanted, reason, now)
        order = self._save(order.step(SagaStep.REFUNDING, now), payment)
        self._notify("refunding", order)
        order, error = self._advance(order)
        if error is not None:
            raise error
        return order

    def recover(
        self, *, grace: timedelta = timedelta(seconds=60), limit: int = 100
    ) -> RecoveryReport:
        """Drive every unfinished saga last touched more than ``grace`` ago to a consistent end,
        then expire stale reservations.

        Safe to run at any time and from several processes: each step is idempotent and
        every write is guarded by the order's version. Run it at start-up and periodically.
        """
        with self.orders.unit_of_work() as uow:
            candidates = uow.orders.unfinished(updated_before=self.clock() - grace, limit=limit)
        finished: list[str] = []
        unfinished: list[str] = []
        for candidate in candidates:
            try:
                outcome, _ = self._advance(candidate)
            except ConcurrencyConflict:
                log.info("order %s changed while recovering it; left to its owner", candidate.id)
                outcome = candidate
            (finished if outcome.finished else unfinished).append(outcome.id)
        expired = self.inventory.expire_reservations(limit=limit)
        return RecoveryReport(len(candidates), tuple(finished), tuple(unfinished), expired)

    def apply_notification(
        self, notification: PaymentNotification, *, grace: timedelta = timedelta(seconds=10),
    ) -> NotificationOutcome:
        """Apply a provider's event (a verified webhook) once, idempotently.

        An event seen before is a `DUPLICATE`. A lapsed hold on a confirmed order cancels
        the order, releasing its stock; an order whose saga stalled
        (untouched for ``grace``: a crash, a lost response) is driven to its end now rather
        than at the next recovery sweep, by the same idempotent steps. Anything else the
        order already accounts for, or will when its running saga finishes. The event is
        recorded after it was acted on, so a crash in between repeats the (idempotent)
        action on the next delivery instead of skipping it.
        """
        errors = Errors()
        check_text(errors, "provider", notification.provider, max_length=50)
        check_text(errors, "event_id", notification.event_id)
        check_text(errors, "reference", notification.reference)
        errors.raise_if_any("invalid payment notification")
        with self.orders.unit_of_work() as uow:
            if uow.notifications.seen(notification.provider, notification.event_id):
                return NotificationOutcome.DUPLICATE
            order = uow.orders.get(notification.reference)
        # act first, record after: every action here is idempotent, so a crash in between
        # (or a duplicate racing this one) at worst acts twice, and never skips the action
        outcome = self._act_on(notification, order, grace)
        with contextlib.suppress(Conflict):  # a concurrent duplicate recorded it first
            self._record(notification, known=order is not None)
        return outcome

    def _act_on(
        self, notification: PaymentNotification, order: Order | None, grace: timedelta,
    ) -> NotificationOutcome:
        if order is None:
            log.warning("%s event %s is about %r, which is no order of ours",
                        notification.provider, notification.event_id, notification.reference)
            return NotificationOutcome.UNKNOWN_ORDER
        try:
            if (notification.kind is NotificationKind.EXPIRED and order.finished
                    and order.status is OrderStatus.CONFIRMED):
                self._cancel_unpaid(order, "the payment authorization expired before shipping")
                return NotificationOutcome.CANCELLED
            if not order.finished and order.updated_at <= self.clock() - grace:
                self._advance(order)
                return NotificationOutcome.ADVANCED
        except ConcurrencyConflict:  # someone else is changing it right now
            log.info("order %s changed while applying %s event %s", order.id,
                     notification.provider, notification.event_id)
        return NotificationOutcome.NOTED

    @retry_transactions
    def _record(self, notification: PaymentNotification, *, known: bool) -> None:
        with self.orders.unit_of_work() as uow:
            uow.notifications.add(
                notification.provider, notification.event_id, kind=notification.kind.value,
                reference=notification.reference if known else None, at=self.clock())
            uow.commit()

    def _cancel_unpaid(self, order: Order, detail: str) -> Order:
        """Cancel a confirmed order whose payment can no longer be taken: stock released,
        the (lapsed) authorization voided, the reason recorded."""
        order = self._save(order.transition(
            OrderStatus.CANCELLED, self.clock(), saga_step=SagaStep.COMPENSATING,
            failure_reason="authorization-expired", failure_detail=detail, shipment=None,
        ), event="order.cancelled", details={"reason": "authorization-expired"})
        self._notify("cancelling", order)
        order, _ = self._advance(order)
        return order

    # -- the steps -------------------------------------------------------------------------

    def _advance(
        self, order: Order, payment: Payment | None = None,
    ) -> tuple[Order, CommerceError | None]:
        """Run the saga's remaining steps. Returns the order and the error that made it fail
        in this run, if any. Stops early, resumable, when the provider stays unavailable
        while giving money back or settling. ``payment`` is the order's payment as the
        caller already has it (saves reading it back)."""
        error: CommerceError | None = None
        while not order.finished:
            step = order.saga_step
            try:
                if step in _CHECKOUT_STEPS:
                    order, error = self._check_out(order, payment)
                elif step is SagaStep.COMPENSATING:
                    order = self._compensate(order)
                elif step is SagaStep.SHIPPING:
                    order, error = self._settle_shipment(order)
                else:
                    order, error = self._settle_refund(order)
            except PaymentUnavailable as exc:
                log.warning("order %s: provider unavailable at step %s; resumable: %s",
                            order.id, step, exc)
                exc.order_id = order.id
                return order, error or exc
            payment = None  # written by the step: read it again if another step needs it
        return order, error

    def _check_out(
        self, order: Order, payment: Payment | None,
    ) -> tuple[Order, CommerceError | None]:
        """Reserve, authorize, hold and confirm: one write to the order store at the end
        (the confirmed order with its authorized payment), or one recording the failure.

        The steps in between leave no mark in the order store: each is idempotent (the
        reservation by its id, the authorization by its key, the hold by its reservation),
        so recovery from ``started`` simply runs them again, and learns from the inventory
        store and the provider what the crashed run had already done. Orders written at
        ``reserved`` or ``authorized`` (by 0.1) resume from there.
        """
        step = order.saga_step
        if step is SagaStep.STARTED:
            try:
                self.inventory.reserve(
                    order.reservation_id, reference=order.id, ttl=self.reservation_ttl,
                    lines=[LineRequest(line.sku, line.quantity) for line in order.lines],
                )
            except (InsufficientStock, ReservationExpired) as exc:
                if isinstance(exc, InsufficientStock):
                    exc.order_id = order.id
                return self._fail(order, exc), exc
            self._notify("stock_reserved", order)
        payment = payment if payment is not None else self._payment(order)
        if payment.status is PaymentStatus.PENDING:
            try:
                authorization = self.payments.authorize(
                    token=order.payment_token, amount=payment.amount,
                    idempotency_key=payment.authorize_key, reference=order.id,
                )
            except PaymentDeclined as exc:
                exc.order_id = order.id
                declined = payment.decline(exc.decline_code, self.clock())
                return self._fail(order, exc, declined), exc
            except PaymentUnavailable as exc:
                # outcome unknown: compensation asks the provider by key and voids if needed
                exc.order_id = order.id
                return self._fail(order, exc), exc
            payment = payment.authorize(authorization.id, self.clock(),
                                        capture_before=authorization.expires_at)
            self._notify("payment_authorized", order)
        try:
            self.inventory.hold(order.reservation_id)
        except (ReservationExpired, NotFound) as exc:
            expired = ReservationExpired(order.reservation_id, getattr(exc, "status", "missing"))
            # the authorization is saved with the failure, so compensation voids it
            return self._fail(order, expired, payment), expired
        self._notify("stock_held", order)
        order = self._save(order.transition(
            OrderStatus.CONFIRMED, self.clock(), saga_step=SagaStep.DONE
        ), payment, event="order.confirmed")
        self._notify("confirmed", order)
        return order, None

    def _fail(self, order: Order, error: CommerceError, payment: Payment | None = None) -> Order:
        """Record why the checkout fails and that compensation is due (one transaction)."""
        order = self._save(order.step(
            SagaStep.COMPENSATING, self.clock(), failure_reason=error.code,
            failure_detail=str(error),
        ), payment)
        self._notify("compensating", order)
        return order

    def _compensate(self, order: Order) -> Order:
        """Give everything back: release the stock, void any authorization, then close."""
        self.inventory.release(order.reservation_id)
        self._notify("stock_released", order)
        payment = self._payment(order)
        now = self.clock()
        if payment.status is PaymentStatus.PENDING:
            found = self.payments.find_authorization(payment.authorize_key)
            if found is None and now < payment.updated_at + self.payments.lookup_delay:
                # the provider's lookup may not show a hold this recent yet: decide later
                # (the stock is released already; recovery comes back for the payment)
                raise PaymentUnavailable("cannot tell yet whether the provider holds a "
                                         "payment for this order", order_id=order.id)
            payment = (payment.abandon(now) if found is None
                       else payment.authorize(found.id, now, capture_before=found.expires_at))
        if payment.status is PaymentStatus.AUTHORIZED:
            self.payments.void(
                authorization_id=payment.provider_id(), idempotency_key=f"{order.id}:void"
            )
            payment = payment.void(self.clock())
        if order.status is OrderStatus.PENDING:
            order = order.transition(OrderStatus.FAILED, self.clock(), saga_step=SagaStep.DONE)
            order = self._save(order, payment, event="order.failed",
                               details={"reason": order.failure_reason})
        else:
            order = self._save(order.step(SagaStep.DONE, self.clock()), payment)
        self._notify("compensated", order)
        return order

    def _settle_shipment(self, order: Order) -> tuple[Order, CommerceError | None]:
        payment = self._payment(order)
        if payment.lapsed(self.clock()):
            # the provider said the hold lapses by now: cancel cleanly, without asking it
            # to capture what it will not
            error = PaymentDeclined("the payment authorization expired before shipping",
                                    decline_code=AUTHORIZATION_EXPIRED, order_id=order.id)
            return self._cancel_unpaid(order, str(error)), error
        if payment.status is PaymentStatus.AUTHORIZED:
            try:
                self.payments.capture(
                    authorization_id=payment.provider_id(), amount=payment.authorized,
                    idempotency_key=f"{order.id}:capture",
                )
            except PaymentDeclined as exc:
                exc.order_id = order.id
                if exc.decline_code == AUTHORIZATION_EXPIRED:
                    # the hold lapsed: this order can no longer be paid; cancel it cleanly
                    return self._cancel_unpaid(order, str(exc)), exc
                # nothing was taken: the order stays confirmed, the shipment is not recorded
                return self._save(order.step(SagaStep.DONE, self.clock(), shipment=None)), exc
            payment = payment.capture(payment.authorized, self.clock())
            order = self._save(order, payment, event="payment.captured", details={
                "captured": {"amount": payment.captured.amount,
                             "currency": payment.captured.currency}})
            self._notify("payment_captured", order)
        self.inventory.commit(order.reservation_id)
        self._notify("stock_committed", order)
        order = self._save(order.transition(
            OrderStatus.SHIPPED, self.clock(), saga_step=SagaStep.DONE
        ), event="order.shipped", details={
            "carrier": order.shipment.carrier if order.shipment else None,
            "tracking_number": order.shipment.tracking_number if order.shipment else None})
        self._notify("shipped", order)
        return order, None

    def _settle_refund(self, order: Order) -> tuple[Order, CommerceError | None]:
        payment = self._payment(order)
        pending = payment.pending_refund
        error: CommerceError | None = None
        refunded: dict[str, object] | None = None
        if pending is not None:
            try:
                refund_id = self.payments.refund(
                    authorization_id=payment.provider_id(), amount=pending.amount,
                    idempotency_key=pending.idempotency_key,
                )
            except PaymentDeclined as exc:
                exc.order_id = order.id
                payment, error = payment.refund_failed(exc.decline_code, self.clock()), exc
            else:
                payment = payment.refund_done(refund_id, self.clock())
                refunded = {"amount": pending.amount.amount, "currency": pending.amount.currency}
        now = self.clock()
        if payment.status is PaymentStatus.REFUNDED and order.can_become(OrderStatus.REFUNDED):
            order = order.transition(OrderStatus.REFUNDED, now, saga_step=SagaStep.DONE)
        else:
            order = order.step(SagaStep.DONE, now)
        if refunded is None:
            order = self._save(order, payment)
        else:
            order = self._save(order, payment, event="order.refunded", details={
                "refunded": refunded, "refunded_in_total": payment.refunded.amount})
        self._notify("refunded", order)
        return order, error

    # -- helpers ---------------------------------------------------------------------------

    def _replay(self, scope: str, key: str, fingerprint: str) -> Order | None:
        with self.orders.unit_of_work() as uow:
            record = uow.idempotency.get(scope, key)
            order = uow.orders.get(record.order_id) if record is not None else None
        if record is None:
            return None
        if record.fingerprint != fingerprint:
            raise IdempotencyKeyReused(key)
        if order is None:  # pragma: no cover - written in the same transaction as the record
            raise NotFound("order", record.order_id)
        if order.failure_reason is not None and order.status in (OrderStatus.PENDING,
                                                                  OrderStatus.FAILED):
            raise _failure_error(order)
        if order.status is OrderStatus.PENDING:
            raise IdempotencyKeyInUse(key, order.id)
        return order

    def _price(self, command: PlaceOrder) -> tuple[OrderLine, ...]:
        """Snapshot names and prices; every SKU must exist, be active and share one currency."""
        products = self.inventory.get_products([line.sku for line in command.lines])
        errors = Errors()
        lines: list[OrderLine] = []
        for index, item in enumerate(command.lines):
            product = products.get(item.sku)
            if product is None:
                errors.add(f"lines[{index}].sku", f"unknown sku {item.sku!r}")
            elif not product.active:
                errors.add(f"lines[{index}].sku", f"sku {item.sku!r} is not for sale")
            else:
                lines.append(OrderLine(item.sku, product.name, item.quantity, product.price))
        errors.raise_if_any("invalid order")
        currency = lines[0].unit_price.currency
        for index, line in enumerate(lines):
            if line.unit_price.currency != currency:
                errors.add(f"lines[{index}].sku",
                           f"priced in {line.unit_price.currency}, the order is in {currency}")
                raise CurrencyMismatch(currency, line.unit_price.currency, errors.items)
        return tuple(lines)

    def _load(self, order_id: str, customer_id: str | None = None) -> Order:
        with self.orders.unit_of_work() as uow:
            order = uow.orders.get(order_id)
        if order is None or (customer_id is not None and order.customer_id != customer_id):
            raise NotFound("order", order_id)
        return order

    def _payment(self, order: Order) -> Payment:
        with self.orders.unit_of_work() as uow:
            payment = uow.payments.get(order.payment_id) if order.payment_id else None
        if payment is None:  # pragma: no cover - created with the order
            raise NotFound("payment", str(order.payment_id))
        return payment

    def _require(self, order: Order, status: OrderStatus) -> None:
        if not order.finished or not order.can_become(status):
            raise InvalidTransition("order", order.id, order.status, status)

    @retry_transactions
    def _create(self, record: IdempotencyRecord, order: Order, payment: Payment) -> None:
        """The pending order, its payment and its idempotency key, in one transaction."""
        with self.orders.unit_of_work() as uow:
            uow.idempotency.add(record)
            uow.orders.add(order)
            uow.payments.add(payment)
            uow.outbox.add([order_event("order.placed", order, order.created_at)])
            uow.commit()

    @retry_transactions
    def _save(
        self, order: Order, payment: Payment | None = None, *, event: str | None = None,
        details: dict[str, object] | None = None,
    ) -> Order:
        """Write the order (and its payment), and the event the change is, if it is one, in
        one transaction on the order store."""
        with self.orders.unit_of_work() as uow:
            saved = uow.orders.update(order)
            if payment is not None:
                uow.payments.update(payment)
            if event is not None:
                uow.outbox.add([order_event(event, saved, saved.updated_at, **(details or {}))])
            uow.commit()
        return saved

    def _notify(self, step: str, order: Order) -> None:
        if self.on_step is not None:
            self.on_step(step, order)


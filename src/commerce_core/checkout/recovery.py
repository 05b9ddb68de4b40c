"""Recovery and the provider's events: drive interrupted sagas to a consistent end, and
apply verified provider notifications once, after checking they are about our payment."""

from __future__ import annotations

import contextlib
import enum
import logging
from datetime import timedelta

import attrs

from commerce_core._validate import Errors, check_instance, check_text
from commerce_core.checkout._runner import Saga
from commerce_core.checkout.compensation import cancel_unpaid
from commerce_core.checkout.refunds import ours
from commerce_core.errors import (
    CommerceError,
    ConcurrencyConflict,
    Conflict,
    InvalidNotification,
    InvalidTransition,
    RefundExceedsCaptured,
    TransientStoreError,
)
from commerce_core.money import Money
from commerce_core.orders.model import Order, OrderStatus
from commerce_core.orders.ports import OrderUnitOfWork
from commerce_core.payments.model import (
    NotificationKind,
    Payment,
    PaymentNotification,
    PaymentStatus,
)

__all__ = ["NotificationOutcome", "RecoveryFailure", "RecoveryReport", "apply_notification",
           "recover"]

log = logging.getLogger("commerce_core.checkout")


@attrs.frozen
class RecoveryFailure:
    """An order `recover()` could not finish, and why: the error's ``code`` and message."""

    order_id: str
    error: str
    detail: str


@attrs.frozen
class RecoveryReport:
    """What `recover()` did: orders examined, those it finished, those left resumable (the
    provider still unavailable, or another process driving them), those whose step raised
    an error (``failed``, each with why; the sweep went on past them), and how many stale
    reservations it expired."""

    examined: int
    finished: tuple[str, ...]
    unfinished: tuple[str, ...]
    expired_reservations: int
    failed: tuple[RecoveryFailure, ...] = ()
    #: failed checkouts deleted for being older than the retention
    purged_failed_orders: int = 0


class NotificationOutcome(enum.StrEnum):
    """What `Checkout.apply_notification` did with a provider's event."""

    DUPLICATE = "duplicate"  # applied before: nothing done
    UNKNOWN_ORDER = "unknown_order"  # not a payment of ours: recorded, nothing done
    MISMATCHED = "mismatched"  # names our order, but not its payment: recorded, ignored
    CANCELLED = "cancelled"  # the hold lapsed: the order was cancelled, its stock released
    VOIDED = "voided"  # a hold made for an order that had already failed: given back
    ADVANCED = "advanced"  # a stalled saga was driven to its end
    REFUNDED = "refunded"  # a refund made outside the library was recorded
    DEFERRED = "deferred"  # cannot be applied yet (the order is mid-step): not recorded,
    #                        so the provider delivers it again later
    NOTED = "noted"  # the order already accounts for it


def recover(saga: Saga, *, grace: timedelta, limit: int) -> RecoveryReport:
    """See `Checkout.recover`."""
    with saga.order_store.unit_of_work() as uow:
        candidates = uow.orders.unfinished(updated_before=saga.clock() - grace, limit=limit)
    finished: list[str] = []
    unfinished: list[str] = []
    failed: list[RecoveryFailure] = []
    for candidate in candidates:
        try:
            outcome = saga.advance(candidate).order
        except ConcurrencyConflict:
            log.info("order %s changed while recovering it; left to its owner", candidate.id)
            unfinished.append(candidate.id)
        except Exception as exc:  # one order's error never stops the sweep (logged)
            log.exception("recovery could not finish order %s", candidate.id)
            failed.append(RecoveryFailure(candidate.id, getattr(exc, "code", type(exc).__name__),
                                          str(exc)))
            _set_aside(saga, candidate)
        else:
            (finished if outcome.finished else unfinished).append(outcome.id)
    expired = saga.inventory.expire_reservations(limit=limit)
    purged = _purge_failed(saga, limit)
    return RecoveryReport(len(candidates), tuple(finished), tuple(unfinished), expired,
                          tuple(failed), purged)


def _purge_failed(saga: Saga, limit: int) -> int:
    """Failed checkouts past the retention go, with their idempotency records: every
    declined card and missing stock left an order, and they would pile up for ever; so do
    the keys of requests that made no order (each refund, shipment or adjustment over HTTP
    keeps one). A repeat after that runs again, and the command's own key (a refund's, an
    adjustment's) still makes it once."""
    failed, requests = saga.failed_order_retention, saga.idempotency_retention
    if failed is None and requests is None:
        return 0

    def purge() -> int:
        now = saga.clock()
        with saga.order_store.unit_of_work() as uow:
            count = (0 if failed is None
                     else uow.orders.purge_failed(failed_before=now - failed, limit=limit))
            if requests is not None:
                uow.idempotency.purge_requests(created_before=now - requests, limit=limit)
            uow.commit()
        return count

    return saga.store_retry.call(purge, retry_on=(TransientStoreError,))


def _set_aside(saga: Saga, order: Order) -> None:
    """Mark an order the sweep could not finish as touched now: the next sweeps take the
    orders left longest first, so it waits its turn behind them (and a grace period) instead
    of taking a sweep's places at every sweep while newer orders never get one."""
    try:
        saga.save(order.step(order.saga_step, saga.clock()))
    except CommerceError:  # it stays where it is, and is tried again next sweep
        log.warning("order %s could not be set aside; tried again next sweep", order.id)


def _check(notification: object) -> PaymentNotification:
    """The notification, if every field has the type and shape the port says; a translator
    that let through less is refused with `InvalidNotification`, nothing changed."""
    if not isinstance(notification, PaymentNotification):
        raise InvalidNotification("not a PaymentNotification")
    given = notification
    errors = Errors()
    check_text(errors, "provider", given.provider, max_length=50)
    check_text(errors, "event_id", given.event_id, max_length=255)
    check_instance(errors, "kind", given.kind, NotificationKind, "a NotificationKind")
    check_text(errors, "authorization_id", given.authorization_id, max_length=255)
    for name in ("reference", "refund_id", "refund_key"):
        if getattr(given, name) is not None:
            check_text(errors, name, getattr(given, name), max_length=255)
    if given.amount is not None:
        check_instance(errors, "amount", given.amount, Money, "Money")
    if given.kind is NotificationKind.REFUNDED and (
            given.refund_id is None or not isinstance(given.amount, Money)
            or given.amount.amount <= 0):
        errors.add("refund_id", "a refund notification names its refund and its amount")
    if errors.items:
        raise InvalidNotification("invalid payment notification", errors.items)
    return given


def apply_notification(saga: Saga, notification: PaymentNotification, *,
                       grace: timedelta) -> NotificationOutcome:
    """See `Checkout.apply_notification`."""
    notification = _check(notification)
    with saga.order_store.unit_of_work() as uow:
        if uow.notifications.seen(notification.provider, notification.event_id):
            return NotificationOutcome.DUPLICATE
        order, payment = _subject(uow, notification)
    # act first, record after: every action here is idempotent, so a crash in between
    # (or a duplicate racing this one) at worst acts twice, and never skips the action
    ignored = _ignored(notification, order, payment)
    if ignored is not None or order is None or payment is None:
        outcome = ignored or NotificationOutcome.MISMATCHED
    else:
        outcome = _act_on(saga, notification, order, payment, grace)
    if outcome is not NotificationOutcome.DEFERRED:
        with contextlib.suppress(Conflict):  # a concurrent duplicate recorded it first
            _record(saga, notification, order, outcome)
    return outcome


def _subject(uow: OrderUnitOfWork,
             notification: PaymentNotification) -> tuple[Order | None, Payment | None]:
    """The order and payment an event is about: by the order reference it carries, else
    by the provider's authorization id."""
    if notification.reference is not None:
        order = uow.orders.get(notification.reference)
        payment = (uow.payments.get(order.payment_id)
                   if order is not None and order.payment_id is not None else None)
        return order, payment
    payment = uow.payments.by_authorization(notification.authorization_id)
    return (uow.orders.get(payment.order_id) if payment is not None else None), payment


def _mismatch(notification: PaymentNotification, payment: Payment | None) -> str | None:
    """Why an event that names our order is not about its payment, if it is not: another
    authorization, or another currency or amount than the payment's."""
    if payment is None:
        return "the order has no payment"
    if (payment.authorization_id is not None
            and notification.authorization_id != payment.authorization_id):
        return (f"authorization {notification.authorization_id!r} is not the payment's "
                f"{payment.authorization_id!r}")
    amount = notification.amount
    if amount is None:
        # nothing but the reference would tie it to a payment whose authorization is not
        # known yet
        return None if payment.authorization_id is not None else "it names no amount"
    if amount.currency != payment.amount.currency:
        return f"currency {amount.currency} is not the payment's {payment.amount.currency}"
    exact = notification.kind in (NotificationKind.AUTHORIZED, NotificationKind.EXPIRED,
                                  NotificationKind.VOIDED)
    if (exact and amount != payment.amount) or amount > payment.amount:
        return f"amount {amount} does not fit the payment's {payment.amount}"
    return None


def _ignored(notification: PaymentNotification, order: Order | None,
             payment: Payment | None) -> NotificationOutcome | None:
    """Why an event is recorded and not acted on, if it is: no order of ours, or not the
    order's payment (trusted by its reference alone, it could cancel or refund another)."""
    if order is None:
        log.warning("%s event %s is about %r, which is no order of ours",
                    notification.provider, notification.event_id,
                    notification.reference or notification.authorization_id)
        return NotificationOutcome.UNKNOWN_ORDER
    why = _mismatch(notification, payment)
    if why is not None:
        log.warning("%s event %s names order %s but is ignored: %s", notification.provider,
                    notification.event_id, order.id, why)
        return NotificationOutcome.MISMATCHED
    return None


def _act_on(
    saga: Saga, notification: PaymentNotification, order: Order, payment: Payment,
    grace: timedelta,
) -> NotificationOutcome:
    try:
        if notification.kind is NotificationKind.EXPIRED:
            return _expired(saga, order, grace)
        if (notification.kind is NotificationKind.REFUNDED
                and not ours(payment, notification.refund_key)):
            return _refunded_outside(saga, notification, order, payment)
        if (notification.kind is NotificationKind.AUTHORIZED and order.finished
                and order.status in (OrderStatus.FAILED, OrderStatus.CANCELLED)
                and payment.status in (PaymentStatus.FAILED, PaymentStatus.DECLINED)):
            # a hold that arrived after its order had failed without one (its answer came
            # too late for every lookup): nobody will capture it, so it goes back now
            log.warning("order %s: voiding hold %s made after the order had failed", order.id,
                        notification.authorization_id)
            saga.payments.void(authorization_id=notification.authorization_id,
                               idempotency_key=f"{order.id}:void")
            return NotificationOutcome.VOIDED
        if not order.finished and order.updated_at <= saga.clock() - grace:
            saga.advance(order)
            return NotificationOutcome.ADVANCED
    except ConcurrencyConflict:  # someone else is changing it right now
        log.info("order %s changed while applying %s event %s", order.id,
                 notification.provider, notification.event_id)
        if notification.kind in (NotificationKind.REFUNDED, NotificationKind.EXPIRED):
            return NotificationOutcome.DEFERRED
    return NotificationOutcome.NOTED


def _expired(saga: Saga, order: Order, grace: timedelta) -> NotificationOutcome:
    """The hold lapsed: a confirmed order can no longer be paid, and is cancelled. One in the
    middle of a step (its checkout still confirming it, say) is not decided on now: the event
    is answered "later" and applied when it comes again, so a lapse during a checkout is
    never lost."""
    if not order.finished and order.updated_at <= saga.clock() - grace:
        order = saga.advance(order).order  # a stalled saga: finish it first
    if not order.finished:
        return NotificationOutcome.DEFERRED
    if order.status is OrderStatus.CONFIRMED:
        cancel_unpaid(saga, order, "the payment authorization expired before shipping")
        return NotificationOutcome.CANCELLED
    return NotificationOutcome.NOTED


def _refunded_outside(saga: Saga, notification: PaymentNotification, order: Order,
                      payment: Payment) -> NotificationOutcome:
    """Record a refund made in the provider's dashboard, once (by its id), so that what the
    order store says is refundable stays true to the provider's books."""
    refund_id, amount = str(notification.refund_id), notification.amount
    assert amount is not None  # noqa: S101 - checked by _check
    if payment.knows_refund(refund_id):
        return NotificationOutcome.NOTED
    if not order.finished:
        # the order is mid-step (its capture not recorded yet, say): apply it later
        return NotificationOutcome.DEFERRED
    try:
        payment = payment.record_outside_refund(refund_id, amount, saga.clock())
    except (RefundExceedsCaptured, InvalidTransition) as exc:
        # at rest, and still no room for it: not a refund of this payment as we know it
        log.error("order %s: refund %s of %s does not fit its payment (%s); ignored",
                  order.id, refund_id, amount, exc)
        return NotificationOutcome.MISMATCHED
    now = saga.clock()
    if payment.status is PaymentStatus.REFUNDED and order.can_become(OrderStatus.REFUNDED):
        order = order.transition(OrderStatus.REFUNDED, now)
    else:
        order = order.step(order.saga_step, now)
    saga.save(order, payment, event="order.refunded", details={
        "refunded": {"amount": amount.amount, "currency": amount.currency},
        "refunded_in_total": payment.refunded.amount, "outside": True,
        "refund_id": refund_id})
    log.warning("order %s: refund %s of %s made outside the library; recorded", order.id,
                refund_id, amount)
    return NotificationOutcome.REFUNDED


def _record(saga: Saga, notification: PaymentNotification, order: Order | None,
            outcome: NotificationOutcome) -> None:
    def write() -> None:
        with saga.order_store.unit_of_work() as uow:
            uow.notifications.add(
                notification.provider, notification.event_id,
                kind=("mismatched" if outcome is NotificationOutcome.MISMATCHED
                      else notification.kind.value),
                reference=order.id if order is not None else None, at=saga.clock())
            uow.commit()

    saga.store_retry.call(write, retry_on=(TransientStoreError,))

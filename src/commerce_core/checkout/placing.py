"""Placing an order: reserve the stock, authorize the payment, hold the stock and confirm,
once per idempotency key; or fail cleanly, with compensation to follow."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import attrs

from commerce_core._validate import Errors, check_idempotency_key, check_identifier
from commerce_core.checkout._runner import ANSWERING, Answer, Answering, Saga, StepResult
from commerce_core.checkout.commands import MAX_LINES, PlaceOrder, QuoteOrder
from commerce_core.clock import new_id
from commerce_core.errors import (
    CommerceError,
    ConcurrencyConflict,
    Conflict,
    CurrencyMismatch,
    FieldError,
    IdempotencyKeyInUse,
    IdempotencyKeyReused,
    InsufficientStock,
    InvalidInput,
    NotFound,
    PaymentDeclined,
    PaymentUnavailable,
    PricingError,
    TooManyOpenOrders,
    VoucherNotApplicable,
)
from commerce_core.inventory.model import LineRequest
from commerce_core.inventory.services import ReservationExpired
from commerce_core.money import MAX_AMOUNT, Money
from commerce_core.orders.model import (
    Adjustment,
    AdjustmentKind,
    IdempotencyRecord,
    Order,
    OrderLine,
    OrderStatus,
    SagaStep,
    Tax,
    total_of,
)
from commerce_core.payments.model import Payment, PaymentStatus
from commerce_core.pricing.ports import Pricing, PricingRequest

__all__ = ["CheckoutFailed", "Quote", "check_out", "fail", "failure_error", "place_order",
           "quote"]

log = logging.getLogger("commerce_core.checkout")

#: How often a checkout tries to take over a key whose earlier attempt may be tried again
#: (it failed because the provider was unavailable), when other retries race it for the key.
_TAKEOVERS = 3

#: What a payment of a failed checkout may end as for the checkout to be tried again under
#: the same key: nothing held and nothing charged.
_NOTHING_HELD = frozenset({PaymentStatus.FAILED, PaymentStatus.VOIDED})


class CheckoutFailed(Conflict):
    """A checkout failed for a reason other than stock or payment (replayed from the order:
    the reservation expired, say); ``code`` is that reason."""

    def __init__(self, code: str, detail: str, *, order_id: str) -> None:
        super().__init__(code, detail)
        self.code = code  # the instance carries the stored reason
        self.detail = detail
        self.order_id = order_id

    def __str__(self) -> str:
        return self.detail


def failure_error(order: Order) -> CommerceError:
    """The error a failed checkout raised, rebuilt from the order for an idempotent replay."""
    reason = order.failure_reason or "failed"
    detail = order.failure_detail or reason
    if reason == InsufficientStock.code:
        return InsufficientStock((), order_id=order.id)
    if reason == PaymentDeclined.code:
        return PaymentDeclined(detail, order_id=order.id)
    if reason == PaymentUnavailable.code:
        return PaymentUnavailable(detail, order_id=order.id)
    return CheckoutFailed(reason, detail, order_id=order.id)


@attrs.frozen(kw_only=True)
class Quote:
    """What an order would cost, priced exactly as placing it would price it now: the lines
    from the catalogue, the adjustments and taxes of the pricing, the voucher applied."""

    lines: tuple[OrderLine, ...]
    adjustments: tuple[Adjustment, ...]
    taxes: tuple[Tax, ...]
    voucher_code: str | None

    @property
    def currency(self) -> str:
        return self.lines[0].unit_price.currency

    @property
    def subtotal(self) -> Money:
        return Money.sum((line.total for line in self.lines), self.currency)

    @property
    def total(self) -> Money:
        return total_of(self.subtotal, self.adjustments, self.taxes)


def quote(saga: Saga, command: QuoteOrder) -> Quote:
    """See `Checkout.quote`."""
    validate(saga, command)
    _within_limits(saga, command)
    lines, pricing = _priced(saga, command)
    voucher = pricing.voucher
    if voucher is not None:
        # what redeeming would say now (placing decides it again, atomically)
        with saga.order_store.unit_of_work() as uow:
            used = uow.redemptions.used(voucher.code)
            used_by = (voucher.once_per_customer
                       and uow.redemptions.used_by(voucher.code, command.customer_id))
        if voucher.usage_limit is not None and used >= voucher.usage_limit:
            raise VoucherNotApplicable(voucher.code, "used-up",
                                       f"voucher {voucher.code!r} is used up")
        if used_by:
            raise VoucherNotApplicable(voucher.code, "already-used", f"voucher "
                                       f"{voucher.code!r} was used by this customer already")
    return Quote(lines=lines, adjustments=pricing.adjustments, taxes=pricing.taxes,
                 voucher_code=voucher.code if voucher is not None else None)


def place_order(saga: Saga, command: PlaceOrder, idempotency_key: str,
                answer: Answer | None = None) -> Order:
    """See `Checkout.place_order`."""
    check_idempotency_key(idempotency_key)
    validate(saga, command)
    fingerprint = command.fingerprint()
    scope = command.customer_id
    try:
        _within_limits(saga, command)
        lines, pricing = _priced(saga, command)
    except CommerceError:
        # a replay answers as the first request did, even if the catalogue changed since
        replayed = _replay(saga, scope, idempotency_key, fingerprint)
        if isinstance(replayed, Order):
            return replayed
        raise
    replacing: IdempotencyRecord | None = None
    for _ in range(_TAKEOVERS):
        now = saga.clock()
        order = Order.place(
            id=new_id("ord"), customer_id=scope, lines=lines,
            shipping_address=command.shipping_address, payment_token=command.payment_token,
            at=now, adjustments=pricing.adjustments, taxes=pricing.taxes,
            voucher_code=pricing.voucher.code if pricing.voucher is not None else None,
            email=command.email, metadata=command.metadata,
        )
        payment = Payment.start(id=new_id("pay"), order_id=order.id, amount=order.total, at=now)
        order = attrs.evolve(order, payment_id=payment.id)
        record = IdempotencyRecord(scope, idempotency_key, fingerprint, order.id, now)
        try:
            # optimistic: a new key is the common case, so the key is not looked up first;
            # its primary key turns a repeat (or a concurrent duplicate) into a Conflict
            if saga.create(record, order, payment, replacing=replacing,
                           voucher=pricing.voucher):
                break
        except Conflict:
            pass
        # the key was used before, or another request under it won the race: answer as that
        # one did (its result, `IdempotencyKeyReused`, `IdempotencyKeyInUse`), or try again
        # in its place if it failed with nothing held or charged
        replayed = _replay(saga, scope, idempotency_key, fingerprint)
        if isinstance(replayed, Order):
            return replayed
        replacing = replayed
    else:
        raise IdempotencyKeyInUse(idempotency_key)
    saga.notify("started", order)
    answering = (ANSWERING.set(Answering(order.id, scope, idempotency_key, answer))
                 if answer is not None else None)
    try:
        result = saga.advance(order, payment)
    except ConcurrencyConflict:
        # a recovery sweep (another process, after a restart) drove this order meanwhile:
        # answer with what it made of it
        return _as_it_stands(saga, order.id, idempotency_key)
    finally:
        if answering is not None:
            ANSWERING.reset(answering)
    if result.error is not None:
        raise result.error
    if result.order.status is not OrderStatus.CONFIRMED:
        raise failure_error(result.order)
    return result.order


def validate(saga: Saga, command: QuoteOrder) -> None:
    """`InvalidInput` naming every problem of the command at once: when it has any, the
    SKUs of its well-formed lines are looked up too, so that an unknown SKU is not told
    only after the address is fixed."""
    errors = Errors()
    command._check(errors)
    if not errors.items:
        return  # the SKUs are checked (and priced) next, as placing goes on
    unknown_skus(saga, command.lines, errors)
    errors.raise_if_any("invalid order")


def unknown_skus(saga: Saga, lines: Sequence[object], errors: Errors) -> None:
    """Add to ``errors`` the well-formed lines whose SKU is unknown or not for sale."""
    wanted: dict[int, str] = {}
    for index, line in enumerate(lines[:MAX_LINES]):  # more is refused for its count
        sku = getattr(line, "sku", None)
        scratch = Errors()
        check_identifier(scratch, "sku", sku)
        if isinstance(sku, str) and not scratch.items:
            wanted[index] = sku
    if not wanted:
        return
    products = saga.inventory.get_products(list(dict.fromkeys(wanted.values())))
    for index, sku in wanted.items():
        product = products.get(sku)
        if product is None:
            errors.add(f"lines[{index}].sku", f"unknown sku {sku!r}")
        elif not product.active:
            errors.add(f"lines[{index}].sku", f"sku {sku!r} is not for sale")


def _within_limits(saga: Saga, command: QuoteOrder) -> None:
    """The shop's limits on what one customer may order (`CheckoutLimits`)."""
    limits = saga.limits
    most = limits.max_units_per_sku
    if most is not None:
        errors = Errors()
        for index, line in enumerate(command.lines):
            if line.quantity > most:
                errors.add(f"lines[{index}].quantity", f"at most {most} per order")
        errors.raise_if_any("invalid order")
    if limits.max_open_orders is not None:
        # the checkouts still running count too: a burst of them would otherwise all pass
        with saga.order_store.unit_of_work() as uow:
            open_orders = uow.orders.list(customer_id=command.customer_id,
                                          status=(OrderStatus.PENDING, OrderStatus.CONFIRMED),
                                          before=None, limit=limits.max_open_orders)
        if len(open_orders) >= limits.max_open_orders:
            raise TooManyOpenOrders(command.customer_id, limits.max_open_orders)


def check_out(saga: Saga, order: Order, payment: Payment | None) -> StepResult:
    """Reserve, authorize, hold and confirm: one write to the order store at the end (the
    confirmed order with its authorized payment), or one recording the failure.

    The steps in between leave no mark in the order store: each is idempotent (the
    reservation by its id, the authorization by its key, the hold by its reservation), so
    recovery from ``started`` simply runs them again, and learns from the inventory store
    and the provider what the crashed run had already done. Orders written at ``reserved``
    or ``authorized`` (by 0.1) resume from there.
    """
    if order.saga_step is SagaStep.STARTED:
        try:
            saga.inventory.reserve(
                order.reservation_id, reference=order.id, ttl=saga.reservation_ttl,
                lines=[LineRequest(line.sku, line.quantity) for line in order.lines],
            )
        except (InsufficientStock, ReservationExpired) as exc:
            if isinstance(exc, InsufficientStock):
                saga.telemetry.record("stock_out")
            return StepResult(fail(saga, order, exc), exc)
        saga.notify("stock_reserved", order)
    payment = payment if payment is not None else saga.payment(order)
    if payment.status is PaymentStatus.PENDING:
        try:
            authorization = saga.payments.authorize(
                token=order.payment_token, amount=payment.amount,
                idempotency_key=payment.authorize_key, reference=order.id,
            )
        except PaymentDeclined as exc:
            declined = payment.decline(exc.decline_code, saga.clock())
            return StepResult(fail(saga, order, exc, declined), exc)
        except PaymentUnavailable as exc:
            # outcome unknown: compensation asks the provider by key and voids if needed
            return StepResult(fail(saga, order, exc), exc)
        payment = payment.authorize(authorization.id, saga.clock(),
                                    capture_before=authorization.expires_at)
        saga.notify("payment_authorized", order)
    try:
        saga.inventory.place_hold(order.reservation_id)
    except (ReservationExpired, NotFound) as exc:
        # too slow: the reservation expired (an expiry sweep may have taken it while this
        # checkout held it); the authorization is saved with the failure, so compensation
        # voids it
        expired = (exc if isinstance(exc, ReservationExpired)
                   else ReservationExpired(order.reservation_id, "missing"))
        return StepResult(fail(saga, order, expired, payment), expired)
    saga.notify("stock_held", order)
    order = saga.save(order.transition(
        OrderStatus.CONFIRMED, saga.clock(), saga_step=SagaStep.DONE
    ), payment, event="order.confirmed", answering=ANSWERING.get())
    saga.notify("confirmed", order)
    return StepResult(order)


def fail(saga: Saga, order: Order, error: CommerceError, payment: Payment | None = None) -> Order:
    """Record why the checkout fails and that compensation is due (one transaction); logged
    (``commerce_core.checkout``): INFO for a refusal (a card declined, stock short), WARNING
    for what the shop should look at (the provider unavailable, a reservation lapsed)."""
    level = logging.WARNING if isinstance(error, PaymentUnavailable | ReservationExpired) \
        else logging.INFO
    log.log(level, "order %s of customer %s failed at checkout: %s (%s)", order.id,
            order.customer_id, error.code, error)
    order = saga.save(order.step(
        SagaStep.COMPENSATING, saga.clock(), failure_reason=error.code,
        failure_detail=str(error),
    ), payment)
    saga.notify("compensating", order)
    return order


def _as_it_stands(saga: Saga, order_id: str, key: str) -> Order:
    """The answer for a checkout whose order someone else drove to its end meanwhile."""
    order = saga.load(order_id)
    if not order.finished:
        raise IdempotencyKeyInUse(key, order.id)
    if order.status is OrderStatus.FAILED:
        _void_late_hold(saga, order)
        raise failure_error(order)
    return order


def _void_late_hold(saga: Saga, order: Order) -> None:
    """The order failed under another process (a sweep that found no hold yet) while this
    checkout's authorization was still on its way: a hold made after that sweep looked is
    this checkout's to give back."""
    payment = saga.payment(order)
    if payment.status is PaymentStatus.AUTHORIZED:
        return  # the sweep found it: it voids it
    found = saga.payments.find_authorization(payment.authorize_key)
    if found is not None:
        log.warning("order %s failed elsewhere while its hold %s was being made; voiding it",
                    order.id, found.id)
        saga.payments.void(authorization_id=found.id, idempotency_key=f"{order.id}:void")


def _replay(saga: Saga, scope: str, key: str,
            fingerprint: str) -> Order | IdempotencyRecord | None:
    """What a repeated key answers: the order (as it now stands), or the error its checkout
    failed with, or `IdempotencyKeyReused` / `IdempotencyKeyInUse`; or the key's record
    itself, when its checkout failed only because the provider was unavailable and nothing
    is held or charged: that checkout is to be tried again (``None``: no record)."""
    with saga.order_store.unit_of_work() as uow:
        record = uow.idempotency.get(scope, key)
        order = (uow.orders.get(record.order_id)
                 if record is not None and record.order_id is not None else None)
        payment = (uow.payments.get(order.payment_id)
                   if order is not None and order.payment_id is not None else None)
    if record is None:
        return None
    if record.fingerprint != fingerprint:
        raise IdempotencyKeyReused(key)
    if order is None:  # pragma: no cover - written in the same transaction as the record
        raise NotFound("order", str(record.order_id))
    if (order.status is OrderStatus.FAILED and order.finished
            and order.failure_reason == PaymentUnavailable.code
            and payment is not None and payment.status in _NOTHING_HELD):
        return record
    if order.failure_reason is not None and order.status in (OrderStatus.PENDING,
                                                              OrderStatus.FAILED):
        raise failure_error(order)
    if order.status is OrderStatus.PENDING:
        raise IdempotencyKeyInUse(key, order.id)
    return order


def _priced(saga: Saga, command: QuoteOrder) -> tuple[tuple[OrderLine, ...], Pricing]:
    """The lines from the catalogue, and the pricing's answer for them (checked: one
    currency, discounts within what is charged)."""
    lines = _price(saga, command)
    pricing = saga.pricing.price(PricingRequest(
        customer_id=command.customer_id, lines=lines, destination=command.shipping_address,
        shipping_option=command.shipping_option, voucher_code=command.voucher_code,
        email=command.email, metadata=command.metadata))
    currency = lines[0].unit_price.currency
    parts: tuple[Adjustment | Tax, ...] = (*pricing.adjustments, *pricing.taxes)
    for part in parts:
        if part.amount.currency != currency:
            raise PricingError(f"the pricing answered {part.amount} for an order in {currency}")
    too_much = InvalidInput("invalid order", [FieldError(
        "lines", f"the order's total is above {MAX_AMOUNT} minor units")])
    try:
        subtotal = Money.sum((line.total for line in lines), currency)
    except InvalidInput as exc:  # beyond the largest amount Money takes
        raise too_much from exc
    charges = sum(a.amount.amount for a in pricing.adjustments
                  if a.kind is not AdjustmentKind.DISCOUNT)
    if pricing.discounts() > subtotal.amount + charges:
        raise PricingError(f"the pricing's discounts ({pricing.discounts()}) exceed what the "
                           f"order charges ({subtotal.amount + charges})")
    try:
        total = total_of(subtotal, pricing.adjustments, pricing.taxes)
    except InvalidInput as exc:
        raise too_much from exc
    if pricing.voucher is not None and command.voucher_code is None:
        raise PricingError("the pricing applied a voucher the customer did not name")
    if total.amount == 0:
        # nothing to authorize: providers refuse a charge of 0 (Stripe: "Amount must be at
        # least 1"), and an order without a payment has no place in the saga
        if pricing.voucher is not None and pricing.discounts() > 0:
            raise VoucherNotApplicable(pricing.voucher.code, "covers-total",
                                       f"voucher {pricing.voucher.code!r} would leave nothing "
                                       "to pay")
        raise InvalidInput("invalid order", [FieldError(
            "lines", "the order's total is 0: there is nothing to charge")])
    return lines, pricing


def _price(saga: Saga, command: QuoteOrder) -> tuple[OrderLine, ...]:
    """Snapshot names and prices; every SKU must exist, be active and share one currency."""
    products = saga.inventory.get_products([line.sku for line in command.lines])
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

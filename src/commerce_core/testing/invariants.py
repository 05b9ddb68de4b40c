"""The invariants of architecture.md, checked against the stores and the provider's records."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Protocol

from commerce_core.inventory.model import Reservation
from commerce_core.inventory.ports import InventoryStore
from commerce_core.orders.model import Order, OrderStatus, ReturnStatus, SagaStep
from commerce_core.orders.ports import OrderStore
from commerce_core.orders.services import OrderService
from commerce_core.payments.model import Payment, PaymentStatus

__all__ = ["InvariantViolation", "ProviderBooks", "ProviderRecord", "check_invariants",
           "fulfilment_problems", "return_problems"]

_PAGE = 100
_LIVE_PAYMENT = {PaymentStatus.AUTHORIZED}
_CAPTURED = {PaymentStatus.CAPTURED, PaymentStatus.PARTIALLY_REFUNDED, PaymentStatus.REFUNDED}


class ProviderRecord(Protocol):
    """One authorization as the provider's own books show it (its dashboard)."""

    @property
    def id(self) -> str: ...
    @property
    def reference(self) -> str:
        """The order it was made for."""
    @property
    def status(self) -> str:
        """``authorized`` (a live hold), ``voided``, ``expired``, ``captured`` or
        ``declined``."""
    @property
    def captured(self) -> int: ...
    @property
    def refunded(self) -> int: ...


class ProviderBooks(Protocol):
    """A provider whose records can be read back: the sandbox, or an adapter's audit view
    (``commerce_core_stripe.StripeBooks``)."""

    def authorizations(self) -> Sequence[ProviderRecord]: ...


class InvariantViolation(AssertionError):
    """One or more invariants do not hold; ``problems`` lists them."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def _all_payments(store: OrderStore) -> dict[str, Payment]:
    payments: dict[str, Payment] = {}
    after: str | None = None
    while True:
        with store.unit_of_work() as uow:
            page = uow.payments.list(after=after, limit=_PAGE)
        payments.update((p.order_id, p) for p in page)
        if len(page) < _PAGE:
            return payments
        after = page[-1].id


def _stock_problems(inventory: InventoryStore) -> tuple[list[str], list[Reservation]]:
    skus: list[str] = []
    with inventory.unit_of_work() as uow:
        after: str | None = None
        while True:
            page = uow.products.list(active_only=False, after=after, limit=_PAGE)
            skus.extend(p.sku for p in page)
            if len(page) < _PAGE:
                break
            after = page[-1].sku
        levels = list(uow.stock.levels(skus))
        ledger = uow.movements.sums()
        live = list(uow.reservations.live())
    held: Counter[tuple[str, str]] = Counter()
    for reservation in live:
        for line in reservation.outstanding:  # less what shipped in parts
            held[line.sku, line.warehouse] += line.quantity
    problems: list[str] = []
    for level in levels:
        key = (level.sku, level.warehouse)
        if level.reserved < 0 or level.available < 0:
            problems.append(f"oversold: {key} on_hand={level.on_hand} reserved={level.reserved}")
        if ledger.get(key, 0) != level.on_hand:
            problems.append(f"ledger of {key} sums to {ledger.get(key, 0)}, on_hand is "
                            f"{level.on_hand}")
        if held[key] != level.reserved:
            problems.append(f"reserved of {key} is {level.reserved}, live reservations hold "
                            f"{held[key]}")
    return problems, live


def _order_problems(
    orders: dict[str, Order], payments: dict[str, Payment], live: list[Reservation],
    *, settled: bool,
) -> list[str]:
    problems: list[str] = []
    for order in orders.values():
        payment = payments.get(order.id)
        authorized = payment is not None and payment.status in _LIVE_PAYMENT
        if payment is not None and payment.amount != order.total:
            problems.append(f"order {order.id} totals {order.total}, its payment is for "
                            f"{payment.amount}")
        if order.status is OrderStatus.CONFIRMED and order.finished and not authorized:
            problems.append(f"confirmed order {order.id} without an authorized payment")
        if settled and not order.finished:
            problems.append(f"order {order.id} left unfinished at {order.saga_step}")
        if (order.status in (OrderStatus.FAILED, OrderStatus.CANCELLED) and order.finished
                and authorized):
            problems.append(f"{order.status} order {order.id} keeps an authorized payment")
        if (settled and order.status in (OrderStatus.FAILED, OrderStatus.CANCELLED)
                and payment is not None and payment.refundable.amount > 0):
            problems.append(f"{order.status} order {order.id} keeps {payment.refundable} "
                            "captured: a customer charged without an order")
    if settled:
        for reservation in live:
            owner = orders.get(reservation.reference)
            if owner is None or not (owner.status in _HOLDING_STOCK
                                     or owner.saga_step is not SagaStep.DONE):
                problems.append(f"reservation {reservation.id} leaked (order "
                                f"{owner.status if owner else 'missing'})")
    problems.extend(_fulfilment_problems(orders, live))
    return problems


#: Orders at rest that hold stock for what they have left to ship.
_HOLDING_STOCK = frozenset({OrderStatus.CONFIRMED, OrderStatus.PARTIALLY_SHIPPED})
_SHIPPED_WHOLE = frozenset({OrderStatus.SHIPPED, OrderStatus.DELIVERED, OrderStatus.REFUNDED})


def _fulfilment_problems(orders: dict[str, Order], live: list[Reservation]) -> list[str]:
    """Nothing shipped twice or beyond its line; the parcels are the lines' shipped units;
    the status says what is left; an order at rest holds in stock exactly what it has left
    to ship."""
    holding = {reservation.reference: reservation for reservation in live}
    problems: list[str] = []
    for order in orders.values():
        problems.extend(fulfilment_problems(order, holding.get(order.id)))
    return problems


def fulfilment_problems(order: Order, reservation: Reservation | None) -> list[str]:
    """What is wrong with one order's fulfilment, given its reservation as it stands (or
    ``None``): units shipped or cancelled beyond its lines; once at rest, parcels that are
    not its lines' shipped units, a status that says otherwise than what is left, or stock
    held other than what it has left to ship."""
    problems = [f"order {order.id}: {line.sku} shipped {line.shipped_quantity} and "
                f"cancelled {line.cancelled_quantity} of {line.quantity}"
                for line in order.lines
                if min(line.shipped_quantity, line.cancelled_quantity, line.left) < 0]
    shipped_units: Counter[str] = Counter()
    for line in order.lines:
        shipped_units[line.sku] += line.shipped_quantity
    returned = order.returned_units
    problems.extend(f"order {order.id}: {units} units of {sku} returned, {shipped_units[sku]} "
                    "shipped" for sku, units in returned.items() if units > shipped_units[sku])
    if not order.finished:
        return problems
    problems.extend(f"order {order.id} at rest with return {r.id} half-way ({r.status})"
                    for r in order.returns if r.in_flight)
    parcels: Counter[str] = Counter()
    for shipment in order.shipments:
        parcels.update(shipment.units)
    shipped: Counter[str] = Counter()
    for line in order.lines:
        shipped[line.sku] += line.shipped_quantity
    if all(s.lines for s in order.shipments) and +parcels != +shipped:
        problems.append(f"order {order.id}: its parcels hold {dict(parcels)}, its lines "
                        f"say {dict(shipped)} shipped")
    left = order.left_to_ship
    if order.status is OrderStatus.PARTIALLY_SHIPPED and (not left or not +shipped):
        problems.append(f"order {order.id} is partially shipped with {left} left")
    if order.status in _SHIPPED_WHOLE and left:
        problems.append(f"{order.status} order {order.id} has {left} left to ship")
    held: Counter[str] = Counter()
    for unit in reservation.outstanding if reservation is not None else ():
        held[unit.sku] += unit.quantity
    wanted = Counter(left) if order.status in _HOLDING_STOCK else Counter()
    if +held != wanted:
        problems.append(f"{order.status} order {order.id} has {left} left to ship, its "
                        f"stock holds {dict(held)}")
    return problems


def return_problems(inventory: InventoryStore, orders: Mapping[str, Order],
                    payments: Mapping[str, Payment]) -> list[str]:
    """Each return restocked received its units once, in its warehouse, under the ledger
    reason ``return`` with its id as the reference; nothing else was booked for it; the
    refunds of an order's returns come to no more than its payment gave back."""
    problems: list[str] = []
    with inventory.unit_of_work() as uow:
        for order in orders.values():
            for found in order.returns:
                restocked = found.received_at is not None and found.restock
                for sku, units in found.units.items():
                    booked = uow.movements.by_key(f"{found.id}:{sku}")
                    if restocked and (booked is None or (
                            booked.delta, booked.warehouse, booked.reason, booked.reference)
                            != (units, found.warehouse, "return", found.id)):
                        problems.append(f"return {found.id} received {units} {sku} into "
                                        f"stock, the ledger says {booked}")
                    if not restocked and booked is not None and not found.in_flight:
                        problems.append(f"return {found.id} ({found.status}, restock "
                                        f"{found.restock}) booked {booked}")
            payment = payments.get(order.id)
            given = sum(r.refund.amount for r in order.returns
                        if r.refund is not None and r.status is ReturnStatus.REFUNDED)
            if given and (payment is None or given > payment.refunded.amount):
                problems.append(f"order {order.id}: its returns were refunded {given}, its "
                                f"payment {payment.refunded if payment else 'none'}")
    return problems


def _voucher_problems(store: OrderStore, orders: dict[str, Order],
                      limits: Mapping[str, int | None]) -> list[str]:
    holders: Counter[str] = Counter(o.voucher_code for o in orders.values()
                                    if o.voucher_code is not None and not o.gives_back_voucher)
    codes = set(holders) | set(limits) | {o.voucher_code for o in orders.values()
                                          if o.voucher_code is not None}
    problems: list[str] = []
    with store.unit_of_work() as uow:
        used = {code: uow.redemptions.used(code) for code in sorted(codes)}
    for code, count in used.items():
        if count != holders[code]:
            problems.append(f"voucher {code} counts {count} uses, {holders[code]} orders keep it")
        limit = limits.get(code)
        if limit is not None and count > limit:
            problems.append(f"voucher {code} used {count} times, its limit is {limit}")
    return problems


def _provider_problems(
    gateway: ProviderBooks, orders: dict[str, Order], payments: dict[str, Payment],
    *, settled: bool,
) -> list[str]:
    problems: list[str] = []
    per_order: Counter[str] = Counter()
    for auth in gateway.authorizations():
        if auth.status == "declined":
            continue
        per_order[auth.reference] += 1
        owner = orders.get(auth.reference)
        payment = payments.get(auth.reference)
        if settled and auth.status == "authorized" and (
                owner is None or owner.status is not OrderStatus.CONFIRMED):
            problems.append(f"authorization {auth.id} left live for "
                            f"{owner.status if owner else 'no'} order {auth.reference}")
        if auth.status == "captured" and (
                payment is None or payment.status not in _CAPTURED
                or payment.captured.amount != auth.captured
                or (settled and payment.refunded.amount != auth.refunded)):
            problems.append(f"capture {auth.id} of order {auth.reference} does not match "
                            f"the order store's payment")
    problems.extend(f"order {ref} was authorized {n} times"
                    for ref, n in per_order.items() if n > 1)
    return problems


def check_invariants(
    orders: OrderStore, inventory: InventoryStore,
    gateway: ProviderBooks | None = None, *, settled: bool = True,
    voucher_limits: Mapping[str, int | None] | None = None,
) -> None:
    """Raise `InvariantViolation` listing every broken invariant.

    Always: stock never negative and never over-reserved; the ledger sums to ``on_hand``;
    ``reserved`` equals what live reservations hold; at most one authorization per order (one
    order per idempotency key is the store's unique constraint); a confirmed order has an
    authorized payment; every payment is for exactly its order's total; each voucher's uses
    are exactly the orders that keep it (placed, not failed or cancelled), and no more than
    its limit in ``voucher_limits`` (code: limit); no more returned than shipped, each
    restocked return booked once under reason ``return``, and its refunds no more than the
    payment gave back. With ``settled`` (after `recover()`):
    no saga unfinished, no live reservation without a live order, no money captured and kept
    for a failed or cancelled order, and, given the sandbox's
    records (``gateway``: the sandbox, or any `ProviderBooks`), no live authorization or
    capture that the order store does not account for.
    """
    all_orders = {o.id: o for o in OrderService(orders).scan(page_size=_PAGE)}
    payments = _all_payments(orders)
    problems, live = _stock_problems(inventory)
    problems += _order_problems(all_orders, payments, live, settled=settled)
    problems += _voucher_problems(orders, all_orders, voucher_limits or {})
    problems += return_problems(inventory, all_orders, payments)
    if gateway is not None:
        problems += _provider_problems(gateway, all_orders, payments, settled=settled)
    if problems:
        raise InvariantViolation(problems)

"""Orders domain: the order aggregate, its status machine, history and shipment."""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from datetime import datetime

import attrs

from commerce_core.errors import CurrencyMismatch, InvalidTransition, NotFound
from commerce_core.money import Money

__all__ = [
    "Address",
    "Adjustment",
    "AdjustmentKind",
    "IdempotencyRecord",
    "Order",
    "OrderLine",
    "OrderStatus",
    "Return",
    "ReturnLine",
    "ReturnStatus",
    "SagaStep",
    "Shipment",
    "ShipmentLine",
    "StatusChange",
    "Tax",
    "order_of_return",
    "total_of",
]

COUNTRY = re.compile(r"[A-Z]{2}")


class OrderStatus(enum.StrEnum):
    PENDING = "pending"
    CONFIRMED = "confirmed"
    #: some lines (or units) shipped, the rest still to ship or to cancel
    PARTIALLY_SHIPPED = "partially_shipped"
    SHIPPED = "shipped"
    DELIVERED = "delivered"
    CANCELLED = "cancelled"
    FAILED = "failed"
    REFUNDED = "refunded"


_TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    OrderStatus.PENDING: frozenset({OrderStatus.CONFIRMED, OrderStatus.FAILED}),
    OrderStatus.CONFIRMED: frozenset({OrderStatus.PARTIALLY_SHIPPED, OrderStatus.SHIPPED,
                                      OrderStatus.CANCELLED}),
    # the rest ships, or is cancelled (the order is then shipped: all that will ship has)
    OrderStatus.PARTIALLY_SHIPPED: frozenset({OrderStatus.SHIPPED}),
    OrderStatus.SHIPPED: frozenset({OrderStatus.DELIVERED, OrderStatus.REFUNDED}),
    OrderStatus.DELIVERED: frozenset({OrderStatus.REFUNDED}),
    OrderStatus.CANCELLED: frozenset(),
    OrderStatus.FAILED: frozenset(),
    OrderStatus.REFUNDED: frozenset(),
}


class SagaStep(enum.StrEnum):
    """How far the order's cross-store work got; anything but ``done`` is resumable.

    ``started``, ``reserved``, ``authorized``: checkout in progress; ``compensating``: stock and
    payment are being given back (failed checkout or cancel); ``shipping``: payment capture and
    stock commit of the order's last shipment in progress; ``cancelling_rest``: what a
    partly shipped order will not ship is being given back (stock released, its share
    refunded); ``refunding``: a refund is in flight; ``receiving_return``: a return is being
    taken back into stock; ``refunding_return``: a return's refund is in flight (the return
    in flight is `Order.return_in_flight`); ``done``: consistent.
    """

    STARTED = "started"
    RESERVED = "reserved"
    AUTHORIZED = "authorized"
    COMPENSATING = "compensating"
    SHIPPING = "shipping"
    CANCELLING_REST = "cancelling_rest"
    REFUNDING = "refunding"
    RECEIVING_RETURN = "receiving_return"
    REFUNDING_RETURN = "refunding_return"
    DONE = "done"


@attrs.frozen
class Address:
    """Where the order goes. ``country`` is ISO 3166-1 alpha-2."""

    name: str
    line1: str
    city: str
    postal_code: str
    country: str
    line2: str | None = None


@attrs.frozen
class OrderLine:
    """A SKU, quantity and the unit price snapshotted when the order was placed; how many
    of its units have shipped, and how many were cancelled (never to ship)."""

    sku: str
    name: str
    quantity: int
    unit_price: Money
    shipped_quantity: int = 0
    cancelled_quantity: int = 0

    @property
    def total(self) -> Money:
        return self.unit_price * self.quantity

    @property
    def left(self) -> int:
        """Units still to ship (neither shipped nor cancelled)."""
        return self.quantity - self.shipped_quantity - self.cancelled_quantity


class AdjustmentKind(enum.StrEnum):
    """What an adjustment of the order's price is: ``shipping`` and ``fee`` are charged on top
    of the lines, a ``discount`` is taken off them."""

    SHIPPING = "shipping"
    FEE = "fee"
    DISCOUNT = "discount"


@attrs.frozen
class Adjustment:
    """A charge or a discount beyond the lines, as the pricing said when the order was placed.

    ``amount`` is how much, never negative: ``kind`` says which way it goes (`signed` is
    the amount with its sign, as the HTTP resource shows it). ``code`` names what it comes
    from (the shipping option, the voucher), ``label`` is what a customer reads.
    """

    kind: AdjustmentKind
    code: str
    label: str
    amount: Money

    @property
    def signed(self) -> int:
        """The amount in minor units, negative for a discount."""
        return -self.amount.amount if self.kind is AdjustmentKind.DISCOUNT else self.amount.amount


@attrs.frozen
class Tax:
    """A tax on the order: the rate (basis points, 1900 = 19 %) of the destination country.
    ``inclusive``: contained in the prices (shown, not added); exclusive taxes are added to
    the total."""

    country: str
    rate_bp: int
    inclusive: bool
    amount: Money


def total_of(subtotal: Money, adjustments: tuple[Adjustment, ...],
             taxes: tuple[Tax, ...]) -> Money:
    """subtotal + charges - discounts + exclusive taxes (in ``subtotal``'s currency; a
    negative result is refused, as `Money` refuses any)."""
    amount = subtotal.amount
    parts: tuple[Adjustment | Tax, ...] = (*adjustments, *taxes)
    for part in parts:
        if part.amount.currency != subtotal.currency:  # one currency throughout
            raise CurrencyMismatch(subtotal.currency, part.amount.currency)
    amount += sum(adjustment.signed for adjustment in adjustments)
    amount += sum(tax.amount.amount for tax in taxes if not tax.inclusive)
    return Money(amount, subtotal.currency)


def copy_metadata(metadata: Mapping[str, str]) -> dict[str, str]:
    """An order's own copy of its metadata."""
    return dict(metadata)


@attrs.frozen
class StatusChange:
    """One entry of an order's history."""

    status: OrderStatus
    at: datetime


@attrs.frozen
class ShipmentLine:
    """Units of one SKU in a parcel."""

    sku: str
    quantity: int


def units_of(lines: tuple[ShipmentLine, ...] | tuple[ReturnLine, ...]) -> dict[str, int]:
    """SKU to units in lines of a parcel or a return, in the order first named."""
    units: dict[str, int] = {}
    for item in lines:
        units[item.sku] = units.get(item.sku, 0) + item.quantity
    return units


@attrs.frozen
class Shipment:
    """A parcel: its carrier and tracking number, when it left, and what is in it.

    ``id``: unique to the parcel (``shp_…``; empty for orders shipped before 0.2, which
    shipped whole); ``lines``: the units in it; ``warehouse``: where they were taken from
    (``None``: wherever the order's stock was reserved)."""

    carrier: str
    tracking_number: str
    shipped_at: datetime
    id: str = ""
    lines: tuple[ShipmentLine, ...] = ()
    warehouse: str | None = None

    @property
    def units(self) -> dict[str, int]:
        """SKU to units in the parcel."""
        return units_of(self.lines)


class ReturnStatus(enum.StrEnum):
    """Where a return stands: ``requested`` (by the customer or an admin), ``received``
    (back in a warehouse: restocked or written off), ``refunded`` (its share of what was
    paid given back) or ``rejected``."""

    REQUESTED = "requested"
    RECEIVED = "received"
    REFUNDED = "refunded"
    REJECTED = "rejected"


_RETURN_TRANSITIONS: dict[ReturnStatus, frozenset[ReturnStatus]] = {
    ReturnStatus.REQUESTED: frozenset({ReturnStatus.RECEIVED, ReturnStatus.REJECTED}),
    # refunded once the goods are back; or rejected after inspection (received goods stay
    # counted as returned, restocked or written off)
    ReturnStatus.RECEIVED: frozenset({ReturnStatus.REFUNDED, ReturnStatus.REJECTED}),
    ReturnStatus.REFUNDED: frozenset(),
    ReturnStatus.REJECTED: frozenset(),
}


@attrs.frozen
class ReturnLine:
    """Units of one SKU in a return."""

    sku: str
    quantity: int


@attrs.frozen(kw_only=True)
class Return:
    """A return (RMA) of shipped units of one order.

    ``id`` names its order (``ret_<order id>_<n>``). ``warehouse`` and ``restock`` say
    where it was received and whether into stock (``restock`` ``None``: not received, nor
    being received); ``refund`` is what was refunded for it (or is being), asked with the
    shipping (``include_shipping``) or not, ``shipping_refund`` the part of it that was the
    shipping's."""

    id: str
    order_id: str
    lines: tuple[ReturnLine, ...]
    reason: str
    status: ReturnStatus
    requested_at: datetime
    updated_at: datetime
    warehouse: str | None = None
    restock: bool | None = None
    received_at: datetime | None = None
    refund: Money | None = None
    include_shipping: bool = False
    shipping_refund: Money | None = None
    rejection_reason: str | None = None

    @property
    def units(self) -> dict[str, int]:
        """SKU to units in the return."""
        return units_of(self.lines)

    @property
    def counts(self) -> bool:
        """Its units count as returned: it is not rejected, or it was received before."""
        return self.status is not ReturnStatus.REJECTED or self.received_at is not None

    @property
    def in_flight(self) -> bool:
        """Being received (``restock`` decided, not received yet) or refunded (``refund``
        decided, not refunded yet)."""
        return ((self.status is ReturnStatus.REQUESTED and self.restock is not None)
                or (self.status is ReturnStatus.RECEIVED and self.refund is not None))

    def can_become(self, status: ReturnStatus) -> bool:
        return status in _RETURN_TRANSITIONS[self.status]


def order_of_return(return_id: str) -> str:
    """The id of the order a return id names (``ret_<order id>_<n>``), or `NotFound`."""
    if not isinstance(return_id, str) or not return_id.isprintable():
        raise NotFound("return", repr(return_id))  # no return has such an id
    head, _, number = return_id.rpartition("_")
    if not head.startswith("ret_") or len(head) <= 4 or not number.isdecimal():
        raise NotFound("return", return_id)
    return head[4:]


@attrs.frozen(kw_only=True)
class Order:
    """The order aggregate. Immutable: each transition returns the next version.

    ``payment_token`` is the provider token (never card data); ``reservation_id`` is derived
    from the id, so a step that crashed can be found again in the inventory store.
    """

    id: str
    customer_id: str
    lines: tuple[OrderLine, ...]
    currency: str
    shipping_address: Address
    payment_token: str
    status: OrderStatus
    saga_step: SagaStep
    history: tuple[StatusChange, ...]
    created_at: datetime
    updated_at: datetime
    payment_id: str | None = None
    failure_reason: str | None = None
    failure_detail: str | None = None
    #: the parcels, oldest first; while ``saga_step`` is ``shipping``, the last one is on its
    #: way out (its units not yet counted in the lines' ``shipped_quantity``)
    shipments: tuple[Shipment, ...] = ()
    adjustments: tuple[Adjustment, ...] = ()
    taxes: tuple[Tax, ...] = ()
    voucher_code: str | None = None
    email: str | None = None
    metadata: dict[str, str] = attrs.field(factory=dict, converter=copy_metadata, hash=False)
    #: the returns, oldest first
    returns: tuple[Return, ...] = ()
    version: int = 0

    @classmethod
    def place(
        cls, *, id: str, customer_id: str, lines: tuple[OrderLine, ...],
        shipping_address: Address, payment_token: str, at: datetime,
        adjustments: tuple[Adjustment, ...] = (), taxes: tuple[Tax, ...] = (),
        voucher_code: str | None = None, email: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> Order:
        """A new pending order whose checkout saga has started."""
        return cls(
            id=id, customer_id=customer_id, lines=lines, currency=lines[0].unit_price.currency,
            shipping_address=shipping_address, payment_token=payment_token,
            status=OrderStatus.PENDING, saga_step=SagaStep.STARTED,
            history=(StatusChange(OrderStatus.PENDING, at),), created_at=at, updated_at=at,
            adjustments=adjustments, taxes=taxes, voucher_code=voucher_code, email=email,
            metadata=metadata or {},
        )

    @property
    def shipment(self) -> Shipment | None:
        """The first parcel (what 0.1's single ``shipment`` was), if any."""
        return self.shipments[0] if self.shipments else None

    @property
    def left_to_ship(self) -> dict[str, int]:
        """SKU to units neither shipped nor cancelled (in the order of the lines)."""
        left: dict[str, int] = {}
        for line in self.lines:
            if line.left:
                left[line.sku] = left.get(line.sku, 0) + line.left
        return left

    def count_shipped(self, shipment: Shipment) -> tuple[OrderLine, ...]:
        """The lines with ``shipment``'s units counted as shipped (line by line, in order)."""
        wanted = shipment.units
        lines = []
        for line in self.lines:
            units = min(wanted.get(line.sku, 0), line.left)
            wanted[line.sku] = wanted.get(line.sku, 0) - units
            lines.append(attrs.evolve(line, shipped_quantity=line.shipped_quantity + units)
                         if units else line)
        return tuple(lines)

    @property
    def returned_units(self) -> dict[str, int]:
        """SKU to units returned: in returns not rejected, or received before."""
        return units_of(tuple(line for found in self.returns if found.counts
                              for line in found.lines))

    @property
    def returnable(self) -> dict[str, int]:
        """SKU to units shipped and not returned (in the order of the lines)."""
        returned = self.returned_units
        return {line.sku: line.shipped_quantity - returned.get(line.sku, 0)
                for line in self.lines if line.shipped_quantity > returned.get(line.sku, 0)}

    def refunded_returned(self) -> dict[str, int]:
        """SKU to units of the refunded returns (whose share of the money was given back)."""
        return units_of(tuple(line for found in self.returns
                              if found.status is ReturnStatus.REFUNDED for line in found.lines))

    def return_of(self, return_id: str) -> Return:
        """The order's return of that id, or `NotFound`."""
        found = self.find_return(return_id)
        if found is None:
            raise NotFound("return", return_id)
        return found

    def find_return(self, return_id: str) -> Return | None:
        return next((found for found in self.returns if found.id == return_id), None)

    @property
    def return_in_flight(self) -> Return | None:
        """The return being received or refunded (at most one: the saga step says which
        of the two)."""
        return next((found for found in self.returns if found.in_flight), None)

    def with_return(self, changed: Return) -> tuple[Return, ...]:
        """The returns with ``changed`` in place of the one of its id (added if new)."""
        if self.find_return(changed.id) is None:
            return (*self.returns, changed)
        return tuple(changed if found.id == changed.id else found for found in self.returns)

    def cancel_left(self) -> tuple[OrderLine, ...]:
        """The lines with every unit still to ship counted as cancelled."""
        return tuple(attrs.evolve(line, cancelled_quantity=line.cancelled_quantity + line.left)
                     if line.left else line for line in self.lines)

    @property
    def subtotal(self) -> Money:
        """The lines alone."""
        return Money.sum((line.total for line in self.lines), self.currency)

    @property
    def total(self) -> Money:
        """What the customer pays: the subtotal, the adjustments and the exclusive taxes
        (what the payment authorizes)."""
        return total_of(self.subtotal, self.adjustments, self.taxes)

    @property
    def gives_back_voucher(self) -> bool:
        """The order holds a voucher's use it will never keep: it failed (its checkout
        recorded a failure) or was cancelled."""
        return self.voucher_code is not None and (
            self.status in (OrderStatus.FAILED, OrderStatus.CANCELLED)
            or (self.status is OrderStatus.PENDING and self.failure_reason is not None))

    @property
    def reservation_id(self) -> str:
        return f"res_{self.id}"

    @property
    def finished(self) -> bool:
        """No cross-store work is left to do for this order."""
        return self.saga_step is SagaStep.DONE

    def can_become(self, status: OrderStatus) -> bool:
        return status in _TRANSITIONS[self.status]

    def transition(self, status: OrderStatus, at: datetime, **changes: object) -> Order:
        """Move to ``status``, recorded in the history; refuses a transition not allowed."""
        if not self.can_become(status):
            raise InvalidTransition("order", self.id, self.status, status)
        return attrs.evolve(
            self, status=status, history=(*self.history, StatusChange(status, at)),
            updated_at=at, **changes,  # type: ignore[arg-type]  # attrs.evolve takes **kwargs
        )

    def step(self, step: SagaStep, at: datetime, **changes: object) -> Order:
        """Record saga progress without a status change."""
        return attrs.evolve(self, saga_step=step, updated_at=at, **changes)  # type: ignore[arg-type]


@attrs.frozen
class IdempotencyRecord:
    """A command accepted under a key: the fingerprint of the command and the order it made
    (``None`` for a request of a driving adapter that made none, such as a stock adjustment
    over HTTP).

    A driving adapter may keep the response it gave (``response_status``, ``response_body``)
    so that a replay answers with exactly the same status and body.
    """

    scope: str
    key: str
    fingerprint: str
    order_id: str | None
    created_at: datetime
    response_status: int | None = None
    response_body: str | None = None

"""The one error hierarchy of commerce-core: typed, with fields and a readable message."""

from __future__ import annotations

from collections.abc import Sequence

import attrs

__all__ = [
    "AdapterBroken",
    "AdapterNotInstalled",
    "CommerceError",
    "ConcurrencyConflict",
    "Conflict",
    "CurrencyMismatch",
    "DuplicateParcel",
    "FieldError",
    "IdempotencyKeyInUse",
    "IdempotencyKeyReused",
    "InsufficientStock",
    "InvalidInput",
    "InvalidNotification",
    "InvalidSignature",
    "InvalidTransition",
    "NotFound",
    "PaymentDeclined",
    "PaymentError",
    "PaymentUnavailable",
    "PricingError",
    "PricingUnavailable",
    "RefundExceedsCaptured",
    "ReturnExceedsShipped",
    "ShipmentExceedsOrder",
    "Shortage",
    "StockConflict",
    "StoreError",
    "TooManyOpenOrders",
    "TooManyReturns",
    "TransientStoreError",
    "VoucherNotApplicable",
]


class CommerceError(Exception):
    """Base of every error the library raises on purpose.

    ``code`` is a stable slug per kind (it becomes the problem ``type`` over HTTP and the
    ``failure_reason`` of a failed order). ``order_id`` names the order an error of a
    checkout command is about (the checkout stamps it, once, where the error leaves the
    saga), so that a client can look the order up; ``None`` for everything else.
    """

    code = "commerce-error"
    order_id: str | None = None


@attrs.frozen
class FieldError:
    """One invalid field: a JSON-style path (``lines[0].quantity``) and what is wrong with it."""

    path: str
    message: str


class InvalidInput(CommerceError, ValueError):
    """The input was rejected before anything changed; ``errors`` lists every problem found."""

    code = "invalid-input"

    def __init__(self, message: str, errors: Sequence[FieldError] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.errors = tuple(errors)

    def __str__(self) -> str:
        if not self.errors:
            return self.message
        details = "; ".join(f"{e.path}: {e.message}" if e.path else e.message for e in self.errors)
        return f"{self.message}: {details}"


class InvalidSignature(CommerceError):
    """A webhook whose signature does not verify (wrong secret, altered body, too old):
    rejected, nothing changed."""

    code = "invalid-signature"


class InvalidNotification(InvalidInput):
    """A provider's event that verified but cannot be read as a payment notification (a
    field missing or of the wrong type): rejected, nothing changed (over HTTP a 400, so
    that the provider does not retry it forever)."""

    code = "invalid-notification"


class CurrencyMismatch(InvalidInput):
    """Two amounts in different currencies were combined or compared."""

    code = "currency-mismatch"

    def __init__(self, left: str, right: str, errors: Sequence[FieldError] = ()) -> None:
        super().__init__(f"currencies differ: {left} and {right}", errors)
        self.left = left
        self.right = right


class NotFound(CommerceError, LookupError):
    """The named object does not exist (or is not visible to the caller)."""

    code = "not-found"

    def __init__(self, kind: str, key: str) -> None:
        super().__init__(kind, key)
        self.kind = kind
        self.key = key

    def __str__(self) -> str:
        return f"{self.kind} {self.key!r} not found"


class Conflict(CommerceError):
    """The request is valid but conflicts with the current state."""

    code = "conflict"


class InvalidTransition(Conflict):
    """A state machine was asked for a transition its current state does not allow."""

    code = "invalid-transition"

    def __init__(self, kind: str, key: str, current: str, target: str) -> None:
        super().__init__(kind, key, current, target)
        self.kind = kind
        self.key = key
        self.current = current
        self.target = target

    def __str__(self) -> str:
        # plain words: a status is a str enum, whose repr names its class
        return f"{self.kind} {self.key!r} cannot go from '{self.current}' to '{self.target}'"


@attrs.frozen
class Shortage:
    """A line that cannot be reserved: what was asked for and what is available in all."""

    sku: str
    requested: int
    available: int


class InsufficientStock(Conflict):
    """Not every line can be reserved; nothing was reserved."""

    code = "insufficient-stock"

    def __init__(self, shortages: Sequence[Shortage], *, order_id: str | None = None) -> None:
        super().__init__(tuple(shortages))
        self.shortages = tuple(shortages)
        self.order_id = order_id

    def __str__(self) -> str:
        parts = ", ".join(
            f"{s.sku} (requested {s.requested}, available {s.available})" for s in self.shortages
        )
        return f"insufficient stock: {parts}"


class TooManyOpenOrders(Conflict):
    """The customer has as many confirmed, unshipped orders as the shop allows."""

    code = "too-many-open-orders"

    def __init__(self, customer_id: str, limit: int) -> None:
        super().__init__(customer_id, limit)
        self.customer_id = customer_id
        self.limit = limit

    def __str__(self) -> str:
        return (f"customer {self.customer_id!r} has {self.limit} open orders, as many as the "
                "shop allows; wait until one ships")


class StockConflict(Conflict):
    """An adjustment would take ``on_hand`` below zero or below what is reserved."""

    code = "stock-conflict"

    def __init__(self, sku: str, warehouse: str, message: str) -> None:
        super().__init__(sku, warehouse, message)
        self.sku = sku
        self.warehouse = warehouse
        self.message = message

    def __str__(self) -> str:
        return f"{self.sku} at {self.warehouse}: {self.message}"


class DuplicateParcel(Conflict):
    """A parcel of this carrier and tracking number left already, with other contents:
    a tracking number names one parcel; nothing changed."""

    code = "duplicate-parcel"

    def __init__(self, order_id: str, carrier: str, tracking_number: str) -> None:
        super().__init__(order_id, carrier, tracking_number)
        self.order_id = order_id
        self.carrier = carrier
        self.tracking_number = tracking_number

    def __str__(self) -> str:
        return (f"order {self.order_id!r} has a parcel {self.carrier} "
                f"{self.tracking_number} already, with other contents")


class ShipmentExceedsOrder(Conflict):
    """A shipment of more units of a SKU than the order has left to ship (neither shipped
    nor cancelled), or from a warehouse that holds fewer of them for it; nothing changed."""

    code = "shipment-exceeds-order"

    def __init__(self, sku: str, asked: int, left: int, warehouse: str | None = None) -> None:
        super().__init__(sku, asked, left, warehouse)
        self.sku = sku
        self.asked = asked
        self.left = left
        self.warehouse = warehouse

    def __str__(self) -> str:
        where = f" in {self.warehouse}" if self.warehouse is not None else ""
        return f"{self.asked} units of {self.sku!r} asked to ship, {self.left} left{where}"


class ReturnExceedsShipped(Conflict):
    """A return of more units of a SKU than the order shipped and has not had returned
    already (by another return that is not rejected, or was received); nothing changed."""

    code = "return-exceeds-shipped"

    def __init__(self, sku: str, asked: int, returnable: int) -> None:
        super().__init__(sku, asked, returnable)
        self.sku = sku
        self.asked = asked
        self.returnable = returnable

    def __str__(self) -> str:
        return (f"{self.asked} units of {self.sku!r} asked to return, {self.returnable} "
                "shipped and not returned")


class TooManyReturns(Conflict):
    """The order has as many returns as one order may have; nothing changed."""

    code = "too-many-returns"

    def __init__(self, order_id: str, limit: int) -> None:
        super().__init__(order_id, limit)
        self.order_id = order_id
        self.limit = limit

    def __str__(self) -> str:
        return f"order {self.order_id!r} has {self.limit} returns, as many as an order may have"


class RefundExceedsCaptured(Conflict):
    """A refund larger than what was captured and not yet refunded."""

    code = "refund-exceeds-captured"

    def __init__(self, requested: int, refundable: int, currency: str) -> None:
        super().__init__(requested, refundable, currency)
        self.requested = requested
        self.refundable = refundable
        self.currency = currency

    def __str__(self) -> str:
        return (
            f"refund of {self.requested} {self.currency} exceeds the refundable "
            f"{self.refundable} {self.currency}"
        )


class VoucherNotApplicable(InvalidInput):
    """The voucher code cannot be used for this order; ``reason`` says why, as a stable slug:
    ``unknown``, ``inactive``, ``min-subtotal``, ``currency``, ``used-up`` (its usage limit is
    reached), ``already-used`` (by this customer, and it is once per customer) or
    ``covers-total`` (it would leave nothing to pay: a charge of 0 cannot be authorized)."""

    code = "voucher-not-applicable"

    def __init__(self, voucher_code: str, reason: str, detail: str) -> None:
        super().__init__(f"voucher {voucher_code!r} cannot be applied",
                         [FieldError("voucher_code", detail)])
        self.voucher_code = voucher_code
        self.reason = reason


class PricingError(CommerceError):
    """A pricing adapter answered something the checkout cannot take (amounts in another
    currency, discounts above what is charged): a fault of the adapter, not of the order.
    Nothing was written."""

    code = "pricing-error"


class PricingUnavailable(CommerceError):
    """A pricing adapter could not price the order now (its tax service did not answer, say).
    Transient: nothing was written, the same request may be tried again."""

    code = "pricing-unavailable"


class IdempotencyKeyReused(CommerceError):
    """The idempotency key was already used for a different command."""

    code = "idempotency-key-reused"

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key

    def __str__(self) -> str:
        return f"idempotency key {self.key!r} was already used for a different request"


class IdempotencyKeyInUse(Conflict):
    """A command under the same idempotency key is still being processed."""

    code = "idempotency-key-in-use"

    def __init__(self, key: str, order_id: str | None = None) -> None:
        super().__init__(key)
        self.key = key
        self.order_id = order_id

    def __str__(self) -> str:
        return f"a request with idempotency key {self.key!r} is still in progress"


class ConcurrencyConflict(Conflict):
    """An optimistic version check failed: someone else changed the row first. Retryable."""

    code = "concurrency-conflict"

    def __init__(self, kind: str, key: str) -> None:
        super().__init__(kind, key)
        self.kind = kind
        self.key = key

    def __str__(self) -> str:
        return f"{self.kind} {self.key!r} was changed concurrently"


class PaymentError(CommerceError):
    """Base of payment outcomes that are not an approval."""

    code = "payment-error"

    def __init__(self, message: str, *, order_id: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.order_id = order_id

    def __str__(self) -> str:
        return self.message


class PaymentDeclined(PaymentError):
    """The provider refused the payment. Permanent: retrying the same token will not help.

    ``captured``: for a void refused because the payment was captured
    (``decline_code="already_captured"``), how much the provider captured, in minor units of
    the payment's currency, when it says (a capture made in its dashboard may be partial)."""

    code = "payment-declined"

    def __init__(
        self, message: str = "payment declined", *, decline_code: str = "declined",
        order_id: str | None = None, captured: int | None = None,
    ) -> None:
        super().__init__(message, order_id=order_id)
        self.decline_code = decline_code
        self.captured = captured


class PaymentUnavailable(PaymentError):
    """The provider could not be reached or did not answer in time. Transient: may be retried."""

    code = "payment-unavailable"


class StoreError(CommerceError):
    """A store adapter failed for a reason of its own (driver error, lost connection)."""

    code = "store-error"


class TransientStoreError(StoreError):
    """The database gave up on this transaction for a reason that passes: a deadlock, a
    serialization failure, a lock wait timeout, a dropped connection. Nothing was written;
    the services run the whole transaction again (`RetryPolicy.for_store`)."""

    code = "store-busy"


class AdapterBroken(CommerceError):
    """An adapter is installed for a URL scheme but cannot be used: its entry point does
    not import or load, its factory is not callable, or what it builds lacks methods of its
    port. Raised when the platform is built, naming the entry point, never at the first
    checkout."""

    code = "adapter-broken"

    def __init__(self, group: str, scheme: str, entry_point: str, problem: str) -> None:
        super().__init__(group, scheme, entry_point, problem)
        self.group = group
        self.scheme = scheme
        self.entry_point = entry_point
        self.problem = problem

    def __str__(self) -> str:
        return (f"the {self.group} adapter for {self.scheme}:// URLs (entry point "
                f"{self.entry_point!r}) is installed but {self.problem}")


class AdapterNotInstalled(CommerceError, ImportError):
    """No adapter is installed for a URL scheme; the message says what to install."""

    code = "adapter-not-installed"

    def __init__(self, group: str, scheme: str, hint: str) -> None:
        super().__init__(group, scheme, hint)
        self.group = group
        self.scheme = scheme
        self.hint = hint

    def __str__(self) -> str:
        return f"no {self.group} adapter for {self.scheme}:// URLs; {self.hint}"

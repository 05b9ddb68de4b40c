"""The commands a customer sends to check out, validated as a whole before anything happens."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

import attrs

from commerce_core._validate import (
    Errors,
    check_email,
    check_idempotency_key,
    check_identifier,
    check_metadata,
    check_positive_int,
    check_text,
)
from commerce_core.errors import FieldError, InvalidInput
from commerce_core.orders.model import COUNTRY, Address

__all__ = ["MAX_LINES", "MAX_LINE_QUANTITY", "CheckoutLimits", "OrderItem", "PlaceOrder",
           "QuoteOrder", "check_idempotency_key"]

MAX_LINES = 100
MAX_LINE_QUANTITY = 1000


@attrs.frozen(kw_only=True)
class CheckoutLimits:
    """What one customer may order, as a shop sets it (OWASP API6: a customer holding all of
    a product in an order they never pay for). ``None``: no limit.

    ``max_units_per_sku``: units of one SKU in one order (more is `InvalidInput` on the
    line's quantity). ``max_open_orders``: orders not yet shipped, cancelled or failed that
    one customer may have, checkouts still running included (one more is
    `TooManyOpenOrders`). It is checked just before the order is written, not with it, so
    checkouts of one customer that start within those milliseconds may each pass it. A
    repeated key is answered as before whatever the limits say now."""

    max_units_per_sku: int | None = attrs.field(
        default=None, validator=attrs.validators.optional(attrs.validators.ge(1)))
    max_open_orders: int | None = attrs.field(
        default=None, validator=attrs.validators.optional(attrs.validators.ge(1)))


@attrs.frozen
class OrderItem:
    """A SKU and how many of it the customer wants."""

    sku: str
    quantity: int


def _tuple(items: object) -> tuple[OrderItem, ...]:
    # typed as object: callers without a type checker pass anything, and get a typed error
    if isinstance(items, str | bytes) or not isinstance(items, Sequence):
        raise InvalidInput("invalid order", [FieldError("lines", "must be a list of items")])
    return tuple(items)


#: The fields a command had before pricing (0.2): left out of its fingerprint while unset,
#: so that an idempotency key recorded by an earlier version still replays.
_PRICING_FIELDS = ("shipping_option", "voucher_code", "email", "metadata")


@attrs.frozen(kw_only=True)
class QuoteOrder:
    """Price an order without placing it: what, where to, how it ships (a shipping option's
    code), a voucher code, and the order's contact address and metadata (at most 20 keys
    ``^[a-z0-9_.-]{1,40}$`` to strings of at most 500 characters)."""

    customer_id: str
    lines: tuple[OrderItem, ...] = attrs.field(converter=_tuple)
    shipping_address: Address
    shipping_option: str | None = None
    voucher_code: str | None = None
    email: str | None = None
    metadata: dict[str, str] = attrs.field(factory=dict, hash=False)

    def validate(self) -> None:
        """Raise `InvalidInput` listing every problem, or return if there is none."""
        errors = Errors()
        self._check(errors)
        errors.raise_if_any("invalid order")

    def _check(self, errors: Errors) -> None:
        check_text(errors, "customer_id", self.customer_id, max_length=255)
        if not 1 <= len(self.lines) <= MAX_LINES:
            errors.add("lines", f"must have from 1 to {MAX_LINES} lines")
        seen: set[str] = set()
        lines: tuple[object, ...] = self.lines  # checked at run time, whatever the types say
        for index, line in enumerate(lines[:MAX_LINES]):  # beyond them: the count says it
            if not isinstance(line, OrderItem):
                errors.add(f"lines[{index}]", "must be an OrderItem(sku, quantity)")
                continue
            check_identifier(errors, f"lines[{index}].sku", line.sku)
            check_positive_int(errors, f"lines[{index}].quantity", line.quantity,
                               maximum=MAX_LINE_QUANTITY)
            if line.sku in seen:
                errors.add(f"lines[{index}].sku", "appears more than once")
            seen.add(line.sku)
        if self.shipping_option is not None:
            check_identifier(errors, "shipping_option", self.shipping_option)
        if self.voucher_code is not None:
            check_identifier(errors, "voucher_code", self.voucher_code)
        if self.email is not None:
            check_email(errors, "email", self.email)
        check_metadata(errors, "metadata", self.metadata)
        given: object = self.shipping_address
        if not isinstance(given, Address):
            errors.add("shipping_address", "must be an Address")
            errors.raise_if_any("invalid order")
        address = self.shipping_address
        for field in ("name", "line1", "city", "postal_code"):
            check_text(errors, f"shipping_address.{field}", getattr(address, field))
        if address.line2 is not None:
            check_text(errors, "shipping_address.line2", address.line2)
        if not isinstance(address.country, str) or not COUNTRY.fullmatch(address.country):
            errors.add("shipping_address.country", "must be an ISO 3166-1 alpha-2 code")


@attrs.frozen(kw_only=True)
class PlaceOrder(QuoteOrder):
    """Place an order: a `QuoteOrder` and how to pay (a provider token, never card data)."""

    payment_token: str

    def _check(self, errors: Errors) -> None:
        super()._check(errors)
        check_text(errors, "payment.token", self.payment_token, max_length=255)

    def fingerprint(self) -> str:
        """A digest of the command: the same command under the same key replays."""
        fields = attrs.asdict(self)
        for name in _PRICING_FIELDS:
            if not fields[name]:
                del fields[name]
        body = json.dumps(fields, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(body.encode()).hexdigest()

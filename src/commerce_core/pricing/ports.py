"""The pricing port: what an order costs beyond its lines (shipping, discounts, taxes)."""

from __future__ import annotations

from typing import Protocol

import attrs

from commerce_core.money import Money
from commerce_core.orders.model import (
    Address,
    Adjustment,
    AdjustmentKind,
    OrderLine,
    Tax,
    copy_metadata,
)

__all__ = ["LinesOnly", "Pricing", "PricingPolicy", "PricingRequest", "VoucherUse"]


@attrs.frozen(kw_only=True)
class PricingRequest:
    """What an order is priced from: the customer, the lines priced from the catalogue (one
    currency), where it goes, the shipping option and voucher code the customer chose, and
    the order's contact address and metadata (a pricing may look at them: a business
    customer's tax number, say)."""

    customer_id: str
    lines: tuple[OrderLine, ...]
    destination: Address
    shipping_option: str | None = None
    voucher_code: str | None = None
    email: str | None = None
    metadata: dict[str, str] = attrs.field(factory=dict, converter=copy_metadata, hash=False)

    @property
    def currency(self) -> str:
        return self.lines[0].unit_price.currency

    @property
    def subtotal(self) -> Money:
        return Money.sum((line.total for line in self.lines), self.currency)


@attrs.frozen(kw_only=True)
class VoucherUse:
    """A voucher the pricing applied, and the limits on its use, which the order store
    enforces in the transaction that creates the order: at most ``usage_limit`` orders hold
    a use of ``code`` at once (``None``: no limit), and with ``once_per_customer`` at most
    one of each customer. A failed or cancelled order gives its use back."""

    code: str
    usage_limit: int | None = None
    once_per_customer: bool = False


@attrs.frozen(kw_only=True)
class Pricing:
    """A pricing's answer: the adjustments (shipping charges and fees, discounts) and the
    taxes of the order, and the voucher whose use the order takes, if one was applied.

    Every amount is in the order's currency and never negative (a discount's ``amount`` is
    what it takes off); the discounts take off at most what the lines and charges come to.
    """

    adjustments: tuple[Adjustment, ...] = ()
    taxes: tuple[Tax, ...] = ()
    voucher: VoucherUse | None = None

    def discounts(self) -> int:
        return sum(a.amount.amount for a in self.adjustments
                   if a.kind is AdjustmentKind.DISCOUNT)


class PricingPolicy(Protocol):
    """Prices an order beyond its lines. `StandardPricing` is a configurable one; a shop
    with its own tax service or promotion engine writes its own (see the adapter guide).

    `price` raises `InvalidInput` for a choice that does not fit the order (an unknown
    shipping option: the path says which field), `VoucherNotApplicable` for a voucher it
    refuses, and `PricingUnavailable` when it cannot answer now. It must not write anything
    a placed order depends on: a quote calls it too, and so does a checkout that then fails.
    """

    def price(self, request: PricingRequest) -> Pricing: ...


class LinesOnly:
    """The default pricing: the lines alone, no shipping, discounts or taxes."""

    def price(self, request: PricingRequest) -> Pricing:
        return Pricing()

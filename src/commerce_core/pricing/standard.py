"""The standard pricing: shipping options, tax rates per country and vouchers, as a shop
configures them, with the rules and rounding of the HTTP contract's second edition.

Rules, in minor units of the order's currency:

- a percent voucher takes ``round(subtotal * percent_bp / 10000)`` off the subtotal; a fixed
  one its amount, at most the subtotal; shipping is never discounted;
- tax base = subtotal + shipping - discount; exclusive (prices without tax): tax =
  ``round(base * rate_bp / 10000)``, added to the total; inclusive (prices with tax): tax =
  ``base - round(base * 10000 / (10000 + rate_bp))``, shown but not added; no rate for the
  destination country: no tax;
- ``round`` is half to even.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from typing import Protocol

import attrs

from commerce_core._validate import Errors, check_identifier, check_text
from commerce_core.errors import VoucherNotApplicable
from commerce_core.money import Money
from commerce_core.orders.model import COUNTRY, Adjustment, AdjustmentKind, Tax
from commerce_core.pricing.ports import Pricing, PricingRequest, VoucherUse

__all__ = [
    "BASIS_POINTS",
    "PricingRules",
    "RuleSet",
    "ShippingOption",
    "StandardPricing",
    "TaxRate",
    "Voucher",
    "VoucherKind",
    "round_half_even",
]

#: 100 % in basis points.
BASIS_POINTS = 10_000


def round_half_even(numerator: int, denominator: int) -> int:
    """``numerator / denominator`` rounded to the nearest integer, a half to the even one
    (both non-negative; exact, no floats)."""
    quotient, remainder = divmod(numerator, denominator)
    if 2 * remainder > denominator or (2 * remainder == denominator and quotient % 2 == 1):
        quotient += 1
    return quotient


def _country_set(value: Iterable[str] | None) -> frozenset[str] | None:
    if value is None or isinstance(value, str):  # a string is refused by validate()
        return value  # type: ignore[return-value]
    return frozenset(value)


@attrs.frozen(kw_only=True)
class ShippingOption:
    """A way to ship: its price, the countries it ships to (``None``: everywhere), whether
    customers may choose it now."""

    code: str
    name: str
    price: Money
    countries: frozenset[str] | None = attrs.field(default=None, converter=_country_set)
    active: bool = True

    def serves(self, country: str) -> bool:
        return self.countries is None or country in self.countries

    def validate(self) -> None:
        errors = Errors()
        check_identifier(errors, "code", self.code)
        check_text(errors, "name", self.name)
        price: object = self.price
        if not isinstance(price, Money):
            errors.add("price", "must be Money")
        countries: object = self.countries
        if countries is not None:
            if not isinstance(countries, frozenset) or not countries:
                errors.add("countries", "must be a non-empty list of country codes, or null")
            else:
                for country in sorted(map(str, countries)):
                    if not COUNTRY.fullmatch(country):
                        errors.add("countries", f"{country[:8]!r} is not an ISO 3166-1 "
                                   "alpha-2 code")
                        break
        _check_flag(errors, "active", self.active)
        errors.raise_if_any("invalid shipping option")


@attrs.frozen(kw_only=True)
class TaxRate:
    """The tax rate of a destination country, in basis points (1900 = 19 %)."""

    country: str
    rate_bp: int

    def validate(self) -> None:
        errors = Errors()
        if not isinstance(self.country, str) or not COUNTRY.fullmatch(self.country):
            errors.add("country", "must be an ISO 3166-1 alpha-2 code")
        _check_basis_points(errors, "rate_bp", self.rate_bp, low=0)
        errors.raise_if_any("invalid tax rate")


def _upper(code: str) -> str:
    return code.upper() if isinstance(code, str) else code


class VoucherKind(enum.StrEnum):
    PERCENT = "percent"
    FIXED = "fixed"


@attrs.frozen(kw_only=True)
class Voucher:
    """A discount code. ``percent``: ``percent_bp`` off the subtotal; ``fixed``: ``amount``
    off, at most the subtotal. ``min_subtotal``: the least subtotal it applies to;
    ``usage_limit``: how many orders may hold a use at once (``None``: no limit);
    ``once_per_customer``: one use per customer. Codes are compared without case (they are
    kept in upper case: a customer typing ``welcome10`` gets ``WELCOME10``)."""

    code: str = attrs.field(converter=_upper)
    kind: VoucherKind
    percent_bp: int | None = None
    amount: Money | None = None
    min_subtotal: Money | None = None
    usage_limit: int | None = None
    once_per_customer: bool = False
    active: bool = True
    name: str | None = None

    @property
    def label(self) -> str:
        return self.name or self.code

    def validate(self) -> None:
        errors = Errors()
        check_identifier(errors, "code", self.code)
        if self.name is not None:
            check_text(errors, "name", self.name)
        kind: object = self.kind
        if kind is VoucherKind.PERCENT:
            _check_basis_points(errors, "percent_bp", self.percent_bp, low=1)
            if self.amount is not None:
                errors.add("amount", "only for a fixed voucher")
        elif kind is VoucherKind.FIXED:
            if not isinstance(self.amount, Money) or self.amount.amount < 1:
                errors.add("amount", "a fixed voucher needs an amount above 0")
            if self.percent_bp is not None:
                errors.add("percent_bp", "only for a percent voucher")
        else:
            errors.add("kind", "must be 'percent' or 'fixed'")
        least: object = self.min_subtotal
        if least is not None and not isinstance(least, Money):
            errors.add("min_subtotal", "must be Money")
        if (isinstance(self.amount, Money) and isinstance(self.min_subtotal, Money)
                and self.amount.currency != self.min_subtotal.currency):
            errors.add("min_subtotal", "must be in the currency of the amount")
        if self.usage_limit is not None and (type(self.usage_limit) is not int
                                             or not 1 <= self.usage_limit <= 10**9):
            errors.add("usage_limit", "must be an integer from 1 to 1000000000, or null")
        _check_flag(errors, "once_per_customer", self.once_per_customer)
        _check_flag(errors, "active", self.active)
        errors.raise_if_any("invalid voucher")


def _check_basis_points(errors: Errors, path: str, value: object, *, low: int) -> None:
    if type(value) is not int or not low <= value <= BASIS_POINTS:
        errors.add(path, f"must be an integer from {low} to {BASIS_POINTS} (basis points)")


def _check_flag(errors: Errors, path: str, value: object) -> None:
    if not isinstance(value, bool):
        errors.add(path, "must be true or false")


@attrs.frozen(kw_only=True)
class RuleSet:
    """What one order's pricing needs, read together: the active shipping options for the
    destination, the option the customer chose (``None``: none chosen, or unknown), the
    destination's tax rate and the voucher named (``None``: none named, or unknown)."""

    options: tuple[ShippingOption, ...] = ()
    chosen: ShippingOption | None = None
    tax_rate: TaxRate | None = None
    voucher: Voucher | None = None


class PricingRules(Protocol):
    """Where a `StandardPricing` keeps its configuration (`InMemoryPricingRules`; the
    SQLAlchemy adapter's ``SqlAlchemyPricingRules`` keeps it in the order database)."""

    def for_order(self, *, country: str, shipping_option: str | None,
                  voucher_code: str | None) -> RuleSet:
        """The rules one order is priced by (one read)."""
    def put_shipping_option(self, option: ShippingOption) -> bool:
        """Create or replace it; true if it was created."""
    def shipping_options(self, *, country: str | None = None,
                         active_only: bool = False) -> Sequence[ShippingOption]:
        """By code; with ``country``, those that ship there."""
    def put_tax_rate(self, rate: TaxRate) -> bool:
        """Create or replace the rate of its country; true if it was created."""
    def tax_rates(self) -> Sequence[TaxRate]:
        """By country."""
    def put_voucher(self, voucher: Voucher) -> bool:
        """Create or replace it; true if it was created."""
    def voucher(self, code: str) -> Voucher | None: ...
    def vouchers(self) -> Sequence[Voucher]:
        """By code."""


class StandardPricing:
    """The pricing a shop configures: shipping options, tax rates and vouchers kept in
    ``rules``; ``prices_include_tax``: whether catalogue (and shipping) prices include tax
    (shop-wide).

    The ``put_*`` methods validate what they are given (`InvalidInput`, nothing stored) and
    store it; `price` applies it."""

    def __init__(self, rules: PricingRules, *, prices_include_tax: bool = False) -> None:
        self.rules = rules
        self.prices_include_tax = prices_include_tax

    # -- configuration -----------------------------------------------------------------------

    def put_shipping_option(self, option: ShippingOption) -> bool:
        option.validate()
        return self.rules.put_shipping_option(option)

    def put_tax_rate(self, rate: TaxRate) -> bool:
        rate.validate()
        return self.rules.put_tax_rate(rate)

    def put_voucher(self, voucher: Voucher) -> bool:
        voucher.validate()
        return self.rules.put_voucher(voucher)

    def shipping_options(self, country: str | None = None) -> Sequence[ShippingOption]:
        """The active options, for ``country`` if given."""
        return self.rules.shipping_options(country=country, active_only=True)

    # -- pricing -----------------------------------------------------------------------------

    def price(self, request: PricingRequest) -> Pricing:
        country = request.destination.country
        code = request.voucher_code
        rules = self.rules.for_order(
            country=country, shipping_option=request.shipping_option,
            voucher_code=code.upper() if code is not None else None)
        subtotal = request.subtotal
        shipping = self._shipping(request, rules)
        adjustments = [shipping] if shipping is not None else []
        voucher: VoucherUse | None = None
        discount = 0
        if code is not None:
            found = self._voucher(code, rules.voucher, subtotal)
            discount = (round_half_even(subtotal.amount * (found.percent_bp or 0), BASIS_POINTS)
                        if found.kind is VoucherKind.PERCENT
                        else min(found.amount.amount if found.amount else 0, subtotal.amount))
            adjustments.append(Adjustment(AdjustmentKind.DISCOUNT, found.code, found.label,
                                          Money(discount, subtotal.currency)))
            voucher = VoucherUse(code=found.code, usage_limit=found.usage_limit,
                                 once_per_customer=found.once_per_customer)
        taxes: tuple[Tax, ...] = ()
        if rules.tax_rate is not None:
            rate = rules.tax_rate.rate_bp
            base = subtotal.amount + (shipping.amount.amount if shipping else 0) - discount
            amount = (base - round_half_even(base * BASIS_POINTS, BASIS_POINTS + rate)
                      if self.prices_include_tax
                      else round_half_even(base * rate, BASIS_POINTS))
            taxes = (Tax(country, rate, self.prices_include_tax,
                         Money(amount, subtotal.currency)),)
        return Pricing(adjustments=tuple(adjustments), taxes=taxes, voucher=voucher)

    @staticmethod
    def _shipping(request: PricingRequest, rules: RuleSet) -> Adjustment | None:
        country = request.destination.country
        chosen = request.shipping_option
        errors = Errors()
        if chosen is None:
            if rules.options:
                codes = ", ".join(o.code for o in rules.options[:10])
                errors.add("shipping_option", f"required for {country}: one of {codes}")
        else:
            option = rules.chosen
            if option is None:
                errors.add("shipping_option", f"unknown shipping option {chosen!r}")
            elif not option.active:
                errors.add("shipping_option", f"shipping option {chosen!r} is not available")
            elif not option.serves(country):
                errors.add("shipping_option",
                           f"shipping option {chosen!r} does not ship to {country}")
            elif option.price.currency != request.currency:
                errors.add("shipping_option", f"shipping option {chosen!r} is priced in "
                           f"{option.price.currency}, the order is in {request.currency}")
            else:
                return Adjustment(AdjustmentKind.SHIPPING, option.code, option.name,
                                  option.price)
        errors.raise_if_any("invalid order")
        return None

    @staticmethod
    def _voucher(code: str, voucher: Voucher | None, subtotal: Money) -> Voucher:
        if voucher is None:
            raise VoucherNotApplicable(code, "unknown", f"no voucher {code!r}")
        if not voucher.active:
            raise VoucherNotApplicable(code, "inactive", f"voucher {code!r} is not active")
        for money in (voucher.amount, voucher.min_subtotal):
            if money is not None and money.currency != subtotal.currency:
                raise VoucherNotApplicable(code, "currency", f"voucher {code!r} is for "
                                           f"orders in {money.currency}")
        if voucher.min_subtotal is not None and subtotal < voucher.min_subtotal:
            raise VoucherNotApplicable(code, "min-subtotal", f"voucher {code!r} needs a "
                                       f"subtotal of at least {voucher.min_subtotal}")
        return voucher

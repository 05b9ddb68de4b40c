"""A pricing adapter for a shop with a tax service of its own.

Shipping and vouchers come from the standard pricing; the tax comes from the shop's tax
service, asked per order with the destination and the taxable base. A service that does not
answer in time makes the checkout refuse the order with `PricingUnavailable` (HTTP 503 with
``Retry-After``), and nothing is written: the customer tries again.
"""

from __future__ import annotations

from typing import Protocol

import attrs

from commerce_core import Money, PricingUnavailable, StandardPricing, Tax
from commerce_core.pricing import Pricing, PricingRequest

__all__ = ["TaxService", "TaxServicePricing"]


class TaxService(Protocol):
    """The shop's tax service (an HTTP client, in real life)."""

    def rate_for(self, *, country: str, postal_code: str, amount: int,
                 currency: str) -> tuple[int, int]:
        """The rate (basis points) and the tax (minor units) on ``amount``; raises
        `TimeoutError` when it does not answer in time."""


class TaxServicePricing:
    """`StandardPricing` for shipping and vouchers, the tax service for the tax."""

    def __init__(self, standard: StandardPricing, taxes: TaxService) -> None:
        self.standard = standard
        self.taxes = taxes

    def price(self, request: PricingRequest) -> Pricing:
        priced = self.standard.price(request)  # shipping, discounts (and its own taxes)
        base = request.subtotal.amount + sum(
            a.signed for a in priced.adjustments)  # charges minus discounts
        destination = request.destination
        try:
            rate, amount = self.taxes.rate_for(
                country=destination.country, postal_code=destination.postal_code,
                amount=base, currency=request.currency)
        except TimeoutError as exc:
            raise PricingUnavailable(f"the tax service did not answer: {exc}") from exc
        tax = Tax(destination.country, rate, False, Money(amount, request.currency))
        return attrs.evolve(priced, taxes=(tax,) if amount else ())

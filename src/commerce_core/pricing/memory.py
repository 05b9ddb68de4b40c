"""Pricing rules kept in memory: for a shop configured in code, for tests and demos."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from commerce_core.pricing.standard import RuleSet, ShippingOption, TaxRate, Voucher

__all__ = ["InMemoryPricingRules"]


class InMemoryPricingRules:
    """`PricingRules` in this process's memory (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._options: dict[str, ShippingOption] = {}
        self._rates: dict[str, TaxRate] = {}
        self._vouchers: dict[str, Voucher] = {}

    def for_order(self, *, country: str, shipping_option: str | None,
                  voucher_code: str | None) -> RuleSet:
        with self._lock:
            return RuleSet(
                options=tuple(o for _, o in sorted(self._options.items())
                              if o.active and o.serves(country)),
                chosen=(self._options.get(shipping_option)
                        if shipping_option is not None else None),
                tax_rate=self._rates.get(country),
                voucher=self._vouchers.get(voucher_code) if voucher_code is not None else None,
            )

    def put_shipping_option(self, option: ShippingOption) -> bool:
        with self._lock:
            created = option.code not in self._options
            self._options[option.code] = option
        return created

    def shipping_options(self, *, country: str | None = None,
                         active_only: bool = False) -> Sequence[ShippingOption]:
        with self._lock:
            return [o for _, o in sorted(self._options.items())
                    if (not active_only or o.active)
                    and (country is None or o.serves(country))]

    def put_tax_rate(self, rate: TaxRate) -> bool:
        with self._lock:
            created = rate.country not in self._rates
            self._rates[rate.country] = rate
        return created

    def tax_rates(self) -> Sequence[TaxRate]:
        with self._lock:
            return [rate for _, rate in sorted(self._rates.items())]

    def put_voucher(self, voucher: Voucher) -> bool:
        with self._lock:
            created = voucher.code not in self._vouchers
            self._vouchers[voucher.code] = voucher
        return created

    def voucher(self, code: str) -> Voucher | None:
        with self._lock:
            return self._vouchers.get(code.upper())

    def vouchers(self) -> Sequence[Voucher]:
        with self._lock:
            return [v for _, v in sorted(self._vouchers.items())]

"""Pricing: what an order costs beyond its lines. The port (`PricingPolicy`), the default
(`LinesOnly`) and a configurable standard pricing (`StandardPricing`)."""

from commerce_core.pricing.memory import InMemoryPricingRules
from commerce_core.pricing.ports import (
    LinesOnly,
    Pricing,
    PricingPolicy,
    PricingRequest,
    VoucherUse,
)
from commerce_core.pricing.standard import (
    BASIS_POINTS,
    PricingRules,
    RuleSet,
    ShippingOption,
    StandardPricing,
    TaxRate,
    Voucher,
    VoucherKind,
    round_half_even,
)

__all__ = [
    "BASIS_POINTS",
    "InMemoryPricingRules",
    "LinesOnly",
    "Pricing",
    "PricingPolicy",
    "PricingRequest",
    "PricingRules",
    "RuleSet",
    "ShippingOption",
    "StandardPricing",
    "TaxRate",
    "Voucher",
    "VoucherKind",
    "VoucherUse",
    "round_half_even",
]

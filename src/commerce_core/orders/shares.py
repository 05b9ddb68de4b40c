"""What each part of an order was paid, to the cent: each line's share of the total (its part
of the discounts and of the exclusive taxes included) and the charges' (shipping and fees,
with their taxes). The shares sum to the order's total exactly; what some units of a line
are worth is taken so that all of its units sum to the line's share exactly too.

Used to refund what is cancelled before it ships and what comes back in a return."""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from commerce_core.orders.model import AdjustmentKind, Order

__all__ = ["Shares", "allocate", "shares_of", "units_share"]


def allocate(amount: int, weights: Sequence[int]) -> list[int]:
    """``amount`` split in proportion to ``weights`` (non-negative), by largest remainder
    (ties to the first): the parts sum to ``amount`` exactly. All weights 0: all to the
    first part."""
    total = sum(weights)
    if not weights:
        return []
    if total == 0:
        return [amount, *([0] * (len(weights) - 1))]
    parts = [amount * weight // total for weight in weights]
    remainders = sorted(range(len(weights)),
                        key=lambda i: (-(amount * weights[i] % total), i))
    for i in remainders[:amount - sum(parts)]:
        parts[i] += 1
    return parts


@attrs.frozen
class Shares:
    """``lines``: what each of the order's lines was paid (in its order); ``charges``: what
    the shipping and fees were paid, their taxes included. Minor units of the order's
    currency; they sum to the order's total."""

    lines: tuple[int, ...]
    charges: int


def shares_of(order: Order) -> Shares:
    """Discounts come off the lines in proportion to their totals (shipping is never
    discounted; a discount beyond the lines, which only a pricing of one's own can give,
    comes off the charges); exclusive taxes are shared in proportion to what is left of
    each line and charge. Inclusive taxes are in the prices already."""
    totals = [line.total.amount for line in order.lines]
    charges = [a.amount.amount for a in order.adjustments
               if a.kind is not AdjustmentKind.DISCOUNT]
    discount = sum(a.amount.amount for a in order.adjustments
                   if a.kind is AdjustmentKind.DISCOUNT)
    off_lines = min(discount, sum(totals))
    lines = [t - d for t, d in zip(totals, allocate(off_lines, totals), strict=True)]
    charges = [c - d for c, d in zip(charges, allocate(discount - off_lines, charges),
                                     strict=True)]
    taxed = allocate(sum(t.amount.amount for t in order.taxes if not t.inclusive),
                     [*lines, *charges])
    return Shares(
        lines=tuple(net + tax for net, tax in zip(lines, taxed, strict=False)),
        charges=sum(charges) + sum(taxed[len(lines):]))


def units_share(line_share: int, quantity: int, before: int, units: int) -> int:
    """What ``units`` more units of a line of ``quantity`` units paid ``line_share`` are
    worth, when ``before`` of its units were counted already (cancelled or refunded): the
    line's share up to ``before + units`` units less that up to ``before``, each rounded
    down, so that however the units are counted out, all of them make the share exactly."""
    if not 0 <= before <= before + units <= quantity:
        raise ValueError(f"{units} units after {before} of {quantity}")
    return line_share * (before + units) // quantity - line_share * before // quantity

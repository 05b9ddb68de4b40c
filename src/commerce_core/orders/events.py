"""The events of the order aggregate, as they go into the order store's outbox."""

from __future__ import annotations

from datetime import datetime

from commerce_core.events import DomainEvent
from commerce_core.money import Money
from commerce_core.orders.model import Order

__all__ = ["order_event"]


def _money(money: Money) -> dict[str, object]:
    return {"amount": money.amount, "currency": money.currency}


def order_event(type_: str, order: Order, at: datetime, **extra: object) -> DomainEvent:
    """An event of the order aggregate; ``sequence`` is the order's version after the change.

    The payload carries what a host needs to act on it without another lookup (an "order
    confirmed" e-mail): the status, the money (subtotal, adjustments, taxes, total), the
    lines (with their units shipped and cancelled so far), the contact address and the
    metadata."""
    returned = order.returned_units
    return DomainEvent.new(
        type_, aggregate_type="order", aggregate_id=order.id, sequence=order.version, at=at,
        payload={
            "order_id": order.id, "customer_id": order.customer_id,
            "status": order.status.value,
            "subtotal": _money(order.subtotal),
            "adjustments": [{"kind": a.kind.value, "code": a.code, "label": a.label,
                             "amount": {"amount": a.signed, "currency": a.amount.currency}}
                            for a in order.adjustments],
            "taxes": [{"country": t.country, "rate_bp": t.rate_bp, "inclusive": t.inclusive,
                       "amount": _money(t.amount)} for t in order.taxes],
            "total": _money(order.total),
            "lines": [{"sku": line.sku, "quantity": line.quantity,
                       "shipped_quantity": line.shipped_quantity,
                       "cancelled_quantity": line.cancelled_quantity,
                       "returned_quantity": returned.get(line.sku, 0)}
                      for line in order.lines],
            "email": order.email, "metadata": dict(order.metadata),
            **extra,
        },
    )

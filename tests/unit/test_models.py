"""The pure domain: money, the order status machine, payments and stock levels."""

from __future__ import annotations

from datetime import UTC, datetime

import attrs
import pytest

from commerce_core import (
    Address,
    CurrencyMismatch,
    InvalidTransition,
    Money,
    OrderLine,
    OrderStatus,
    RefundExceedsCaptured,
    StockConflict,
)
from commerce_core.inventory import StockLevel
from commerce_core.orders import Order, SagaStep
from commerce_core.payments import Payment, PaymentStatus

T = datetime(2026, 5, 1, tzinfo=UTC)


def test_money_adds_in_one_currency_only() -> None:
    assert Money(150, "EUR") + Money(50, "EUR") == Money(200, "EUR")
    assert Money(150, "EUR") * 3 == Money(450, "EUR")
    assert str(Money(1999, "EUR")) == "19.99 EUR"
    assert str(Money(5, "EUR")) == "0.05 EUR"
    assert str(Money(1999, "JPY")) == "1999 JPY"
    assert str(Money(1999, "KWD")) == "1.999 KWD"
    with pytest.raises(CurrencyMismatch):
        Money(1, "EUR") + Money(1, "USD")
    with pytest.raises(CurrencyMismatch):
        assert Money(1, "EUR") < Money(2, "USD")


def _order() -> Order:
    return Order.place(id="ord_1", customer_id="c", payment_token="tok_visa", at=T,
                       lines=(OrderLine("MUG", "Mug", 2, Money(1250, "EUR")),),
                       shipping_address=Address("A", "B", "C", "D", "DE"))


ALLOWED = {
    ("pending", "confirmed"), ("pending", "failed"), ("confirmed", "shipped"),
    ("confirmed", "partially_shipped"), ("partially_shipped", "shipped"),
    ("confirmed", "cancelled"), ("shipped", "delivered"), ("shipped", "refunded"),
    ("delivered", "refunded"),
}


@pytest.mark.parametrize("source", list(OrderStatus))
@pytest.mark.parametrize("target", list(OrderStatus))
def test_the_order_status_machine_allows_exactly_its_transitions(
    source: OrderStatus, target: OrderStatus
) -> None:
    order = attrs.evolve(_order(), status=source)
    if (source, target) in ALLOWED:
        moved = order.transition(target, T)
        assert moved.status is target and moved.history[-1].status is target
    else:
        with pytest.raises(InvalidTransition):
            order.transition(target, T)


def test_an_order_records_its_history_with_timestamps() -> None:
    later = datetime(2026, 5, 2, tzinfo=UTC)
    order = _order().transition(OrderStatus.CONFIRMED, later, saga_step=SagaStep.DONE)
    assert [(h.status, h.at) for h in order.history] == [("pending", T), ("confirmed", later)]
    assert order.total == Money(2500, "EUR") and order.updated_at == later


def test_a_payment_never_refunds_more_than_it_captured() -> None:
    payment = Payment.start(id="p", order_id="o", amount=Money(5000, "EUR"), at=T)
    with pytest.raises(InvalidTransition):
        payment.capture(Money(5000, "EUR"), T)  # not authorized yet
    payment = payment.authorize("a-1", T).capture(Money(5000, "EUR"), T)
    payment = payment.request_refund(Money(3000, "EUR"), "r", T).refund_done("re-1", T)
    assert payment.status is PaymentStatus.PARTIALLY_REFUNDED
    with pytest.raises(RefundExceedsCaptured):
        payment.request_refund(Money(2001, "EUR"), "r", T)
    with pytest.raises(RefundExceedsCaptured):
        payment.request_refund(Money(0, "EUR"), "r", T)
    payment = payment.request_refund(Money(2000, "EUR"), "r", T).refund_done("re-2", T)
    assert payment.status is PaymentStatus.REFUNDED
    assert [e.kind for e in payment.events] == [
        "authorized", "captured", "refund_requested", "refunded", "refund_requested",
        "refunded"]
    assert payment.pending_refund is None and payment.refund_count == 2


def test_refund_keys_differ_per_refund_and_repeat_for_a_retry() -> None:
    payment = Payment.start(id="p", order_id="o", amount=Money(5000, "EUR"), at=T)
    payment = payment.authorize("a", T).capture(Money(5000, "EUR"), T)
    first = payment.request_refund(Money(1, "EUR"), "r", T)
    assert first.pending_refund is not None
    assert first.pending_refund.idempotency_key == "o:refund:1"
    with pytest.raises(InvalidTransition):
        first.request_refund(Money(1, "EUR"), "r", T)  # one in flight at a time
    second = first.refund_done("re", T).request_refund(Money(1, "EUR"), "r", T)
    assert second.pending_refund is not None
    assert second.pending_refund.idempotency_key == "o:refund:2"


def test_stock_can_never_be_negative_or_over_reserved() -> None:
    level = StockLevel("MUG", "BER", on_hand=5, reserved=3)
    assert level.available == 2
    with pytest.raises(StockConflict):
        level.adjusted(-3)
    with pytest.raises(StockConflict):
        level.with_reserved(3)
    with pytest.raises(StockConflict):
        StockLevel("MUG", "BER", on_hand=-1)
    assert level.committed(3) == StockLevel("MUG", "BER", on_hand=2, reserved=0)

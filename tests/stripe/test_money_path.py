"""The money-path defects an outside review found, through the Stripe adapter and the local
Stripe: each against the provider as users run it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from commerce_core import (
    Money,
    OrderStatus,
    PaymentDeclined,
    PaymentUnavailable,
    Platform,
    RetryPolicy,
)
from commerce_core.testing import ManualClock, check_invariants
from commerce_core_stripe import StripeBooks
from tests.conftest import order, seed
from tests.stripe.conftest import LocalStripe

RETRY = RetryPolicy(attempts=3, initial=0.005, maximum=0.02, jitter=0.005)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(datetime.now(UTC))


@pytest.fixture
def shop(stripe: LocalStripe, tmp_path: Path, clock: ManualClock) -> Iterator[Platform]:
    with Platform.from_urls(orders=f"sqlite:///{tmp_path}/orders.db",
                            inventory=f"sqlite:///{tmp_path}/inventory.db",
                            payments=f"{stripe.url}?timeout=2", retry=RETRY,
                            clock=clock) as platform:
        seed(platform)
        yield platform


def _books(stripe: LocalStripe) -> StripeBooks:
    return StripeBooks(stripe.state()["payment_intents"])


def test_a_capture_lost_a_minute_before_the_deadline_ships_when_repeated_after_it(
    stripe: LocalStripe, shop: Platform, clock: ManualClock
) -> None:
    placed = shop.checkout.place_order(order(("MUG", 2), token="pm_card_visa"),
                                       idempotency_key="k1")
    payment = shop.orders.payment(placed)
    assert payment is not None and payment.capture_before is not None
    clock.advance(payment.capture_before - clock() - timedelta(minutes=1))
    stripe.faults(lost_responses=1.0)  # Stripe captures; no answer comes back
    with pytest.raises(PaymentUnavailable):
        shop.checkout.ship(placed.id, carrier="DHL", tracking_number="T1")
    stripe.faults()
    clock.advance(timedelta(minutes=2))  # the repeat comes after the deadline
    shipped = shop.checkout.ship(placed.id, carrier="DHL", tracking_number="T1")
    assert shipped.status is OrderStatus.SHIPPED
    assert shop.inventory.stock("MUG").on_hand == 8
    ((intent),) = stripe.state()["payment_intents"]
    assert (intent["status"], intent["amount_received"]) == ("succeeded", 2500)
    check_invariants(shop.order_store, shop.inventory_store, _books(stripe))
    assert shop.checkout.recover(grace=timedelta(0)).failed == ()


def test_a_refund_refused_after_a_dashboard_refund_learns_it_and_the_rest_goes_through(
    stripe: LocalStripe, shop: Platform
) -> None:
    placed = shop.checkout.place_order(order(("MUG", 2), token="pm_card_visa"),
                                       idempotency_key="k1")
    shop.checkout.ship(placed.id, carrier="DHL", tracking_number="T1")
    payment = shop.orders.payment(placed)
    assert payment is not None and payment.authorization_id is not None
    made = stripe.control(f"dashboard_refund:{payment.authorization_id}", amount=700)
    assert made["http_status"] == 200
    with pytest.raises(PaymentDeclined):  # all 25.00: more than Stripe has left
        shop.checkout.refund(placed.id, reason="returned")
    learnt = shop.orders.payment(placed)
    assert learnt is not None and learnt.refunded == Money(700, "EUR")
    done = shop.checkout.refund(placed.id, reason="returned")  # what is left
    assert done.status is OrderStatus.REFUNDED
    refunds = stripe.state()["refunds"]
    assert sorted(r["amount"] for r in refunds) == [700, 1800]
    assert [r["metadata"].get("commerce_key") for r in refunds] == [
        None, f"{placed.id}:refund:2"]
    check_invariants(shop.order_store, shop.inventory_store, _books(stripe))
    assert shop.checkout.recover(grace=timedelta(0)).examined == 0


def test_a_void_refused_because_stripe_captured_it_records_the_capture_and_refunds(
    stripe: LocalStripe, shop: Platform
) -> None:
    placed = shop.checkout.place_order(order(("MUG", 2), token="pm_card_visa"),
                                       idempotency_key="k1")
    payment = shop.orders.payment(placed)
    assert payment is not None and payment.authorization_id is not None
    shop.payment_gateway.capture(authorization_id=payment.authorization_id,
                                 amount=Money(2500, "EUR"), idempotency_key="dashboard")
    cancelled = shop.checkout.cancel(placed.id)
    assert (cancelled.status, cancelled.finished) == (OrderStatus.CANCELLED, True)
    ((intent),) = stripe.state()["payment_intents"]
    assert intent["latest_charge"]["amount_refunded"] == 2500
    check_invariants(shop.order_store, shop.inventory_store, _books(stripe))

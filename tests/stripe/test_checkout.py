"""Checkouts through the Stripe adapter while the provider fails in every way it can: after
`recover()` the order store and Stripe's books agree, and no order was charged twice."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from commerce_core import (
    CommerceError,
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

RETRY = RetryPolicy(attempts=4, initial=0.005, maximum=0.02, jitter=0.005)


def _platform(stripe: LocalStripe, folder: Path) -> Platform:
    return Platform.from_urls(orders=f"sqlite:///{folder}/orders.db",
                              inventory=f"sqlite:///{folder}/inventory.db",
                              payments=f"{stripe.url}?timeout=1", retry=RETRY)


def test_a_shop_day_through_stripe_with_faults_settles_to_the_cent(
    stripe: LocalStripe, tmp_path: Path
) -> None:
    platform = _platform(stripe, tmp_path)
    seed(platform, {"MUG": 40, "POT": 10, "TEA": 200})
    stripe.faults(server_errors=0.15, resets=0.1, lost_responses=0.15, seed=7)
    rng = random.Random(7)
    placed: list[str] = []
    for i in range(60):
        token = "pm_card_chargeDeclined" if i % 10 == 9 else "pm_card_visa"
        try:
            placed.append(platform.checkout.place_order(
                order((rng.choice(["MUG", "POT", "TEA"]), rng.randint(1, 3)), token=token,
                      customer=f"c{i % 5}"), idempotency_key=f"k{i}").id)
        except CommerceError:
            continue
    for n, order_id in enumerate(placed):
        try:
            if n % 4 == 0:
                platform.checkout.cancel(order_id)
            elif n % 4 in (1, 2):
                platform.checkout.ship(order_id, carrier="DHL", tracking_number=f"T{n}")
                if n % 4 == 2:
                    platform.checkout.refund(order_id, amount=Money(100, "EUR"),
                                             reason="goodwill")
        except PaymentUnavailable:
            pass  # left resumable: recovery finishes it
    calls = stripe.state()["calls"]
    stripe.faults()  # the provider is back
    report = platform.checkout.recover(grace=timedelta(0), limit=1000)
    assert report.unfinished == ()

    books = StripeBooks(stripe.state()["payment_intents"])
    check_invariants(platform.order_store, platform.inventory_store, books)
    statuses = {o.status for o in platform.orders.list(limit=100).items}
    assert {OrderStatus.CONFIRMED, OrderStatus.SHIPPED, OrderStatus.CANCELLED,
            OrderStatus.FAILED} <= statuses
    # every live hold, capture and refund at Stripe is one the order store accounts for
    payments = {p.order_id: p for p in platform.orders.payments(
        platform.orders.list(limit=100).items).values()}
    for record in books.authorizations():
        if record.status == "declined":
            continue
        payment = payments[record.reference]
        assert payment.authorization_id == record.id
        assert (payment.captured.amount, payment.refunded.amount) == \
            (record.captured, record.refunded)
    assert sum(calls.values()) > 100  # the faults were really on the path
    platform.close()


@pytest.mark.parametrize("fault", ["resets", "lost_responses", "server_errors"])
def test_a_provider_down_through_every_retry_fails_the_order_cleanly(
    stripe: LocalStripe, tmp_path: Path, fault: str
) -> None:
    platform = _platform(stripe, tmp_path)
    seed(platform)
    stripe.faults(**{fault: 1.0})
    with pytest.raises(PaymentUnavailable) as caught:
        platform.checkout.place_order(order(("MUG", 2)), idempotency_key="k1")
    stripe.faults()
    platform.checkout.recover(grace=timedelta(0))
    failed = platform.orders.get(str(caught.value.order_id))
    assert failed.status is OrderStatus.FAILED
    assert platform.inventory.stock("MUG").reserved == 0
    # a hold made behind a lost response was found and voided, not left on the card
    check_invariants(platform.order_store, platform.inventory_store,
                     StripeBooks(stripe.state()["payment_intents"]))
    platform.close()


def test_a_hold_past_its_capture_before_is_not_captured_the_order_is_cancelled(
    stripe: LocalStripe, tmp_path: Path
) -> None:
    clock = ManualClock(datetime.now(UTC))
    platform = Platform.from_urls(orders=f"sqlite:///{tmp_path}/orders.db",
                                  inventory=f"sqlite:///{tmp_path}/inventory.db",
                                  payments=stripe.url, retry=RETRY, clock=clock)
    seed(platform)
    before = datetime.now(UTC)
    placed = platform.checkout.place_order(order(("MUG", 1), token="pm_card_visa"),
                                           idempotency_key="k1")
    after = datetime.now(UTC)
    payment = platform.orders.payment(placed)
    assert payment is not None and payment.capture_before is not None
    # the provider's seven days, from when it made the hold (to the second)
    week = timedelta(days=7)
    assert before + week - timedelta(seconds=1) <= payment.capture_before <= after + week
    clock.advance(timedelta(days=7, minutes=1))  # a week in the warehouse
    with pytest.raises(PaymentDeclined, match="expired"):
        platform.checkout.ship(placed.id, carrier="DHL", tracking_number="T1")
    cancelled = platform.orders.get(placed.id)
    assert (cancelled.status, cancelled.failure_reason) == (
        OrderStatus.CANCELLED, "authorization-expired")
    assert "capture" not in stripe.state()["calls"]  # it did not even try
    assert platform.inventory.stock("MUG").reserved == 0
    platform.close()

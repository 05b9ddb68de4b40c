"""Shipping near the hold's deadline: a capture that may have been sent is only ever repeated
under its key, and the provider's answer believed, whatever the time."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from commerce_core import Money, OrderStatus, PaymentDeclined, PaymentUnavailable, Platform
from commerce_core.payments import PaymentStatus
from commerce_core.testing import ManualClock, SandboxPaymentGateway, check_invariants
from tests.conftest import order, seed
from tests.helpers import platform_on

HOLD = timedelta(days=7)


@pytest.fixture
def gateway(clock: ManualClock) -> SandboxPaymentGateway:
    """A provider whose holds lapse after seven days, by the test's clock."""
    return SandboxPaymentGateway(clock=clock, hold=HOLD)


@pytest.fixture
def shop(backend: str, tmp_path: Path, clock: ManualClock,
         gateway: SandboxPaymentGateway) -> Iterator[Platform]:
    with platform_on(backend, tmp_path, clock, gateway) as platform:
        seed(platform)
        yield platform


def _ship_a_minute_before_the_deadline_and_lose_the_answer(
    shop: Platform, clock: ManualClock, gateway: SandboxPaymentGateway,
) -> str:
    placed = shop.checkout.place_order(order(("MUG", 2)), idempotency_key="k1")
    payment = shop.orders.payment(placed)
    assert payment is not None and payment.capture_before is not None
    assert abs(payment.capture_before - (clock() + HOLD)) < timedelta(seconds=1)
    clock.advance(HOLD - timedelta(minutes=1))
    gateway.lose_responses.add("capture")
    with pytest.raises(PaymentUnavailable):
        shop.checkout.ship(placed.id, carrier="DHL", tracking_number="T1")
    gateway.lose_responses.clear()
    clock.advance(timedelta(minutes=2))  # the deadline has passed by the next attempt
    return placed.id


def _shipped_and_paid(shop: Platform, gateway: SandboxPaymentGateway, order_id: str) -> None:
    shipped = shop.orders.get(order_id)
    assert (shipped.status, shipped.finished) == (OrderStatus.SHIPPED, True)
    payment = shop.orders.payment(shipped)
    assert payment is not None and payment.status is PaymentStatus.CAPTURED
    assert payment.captured == Money(2500, "EUR")
    stock = shop.inventory.stock("MUG")
    assert (stock.on_hand, stock.reserved) == (8, 0)  # the goods left, and stay gone
    assert [(a.status, a.captured) for a in gateway.authorizations()] == [("captured", 2500)]
    check_invariants(shop.order_store, shop.inventory_store, gateway)
    again = shop.checkout.recover(grace=timedelta(0))
    assert (again.examined, again.failed) == (0, ())


def test_a_lost_capture_repeated_by_ship_after_the_deadline_ships_the_order(
    shop: Platform, clock: ManualClock, gateway: SandboxPaymentGateway
) -> None:
    order_id = _ship_a_minute_before_the_deadline_and_lose_the_answer(shop, clock, gateway)
    shipped = shop.checkout.ship(order_id, carrier="DHL", tracking_number="T1")
    assert shipped.status is OrderStatus.SHIPPED
    _shipped_and_paid(shop, gateway, order_id)


def test_a_lost_capture_resumed_by_recovery_after_the_deadline_ships_the_order(
    shop: Platform, clock: ManualClock, gateway: SandboxPaymentGateway
) -> None:
    order_id = _ship_a_minute_before_the_deadline_and_lose_the_answer(shop, clock, gateway)
    report = shop.checkout.recover(grace=timedelta(0))
    assert (report.finished, report.failed) == ((order_id,), ())
    _shipped_and_paid(shop, gateway, order_id)


def test_a_capture_never_made_before_the_hold_lapsed_cancels_the_order_cleanly(
    shop: Platform, clock: ManualClock, gateway: SandboxPaymentGateway
) -> None:
    """The capture was never sent (the provider was down before the work); by the next
    attempt the hold has lapsed: the provider says so, and the order is cancelled."""
    placed = shop.checkout.place_order(order(("MUG", 2)), idempotency_key="k1")
    clock.advance(HOLD - timedelta(minutes=1))
    gateway.outage.add("capture")
    with pytest.raises(PaymentUnavailable):
        shop.checkout.ship(placed.id, carrier="DHL", tracking_number="T1")
    gateway.outage.clear()
    clock.advance(timedelta(minutes=2))
    report = shop.checkout.recover(grace=timedelta(0))
    assert (report.finished, report.failed) == ((placed.id,), ())
    cancelled = shop.orders.get(placed.id)
    assert (cancelled.status, cancelled.failure_reason) == (
        OrderStatus.CANCELLED, "authorization-expired")
    assert shop.inventory.stock("MUG").reserved == 0
    assert [a.status for a in gateway.authorizations()] == ["expired"]
    check_invariants(shop.order_store, shop.inventory_store, gateway)


def test_shipping_after_the_deadline_cancels_without_asking_for_a_capture(
    shop: Platform, clock: ManualClock, gateway: SandboxPaymentGateway
) -> None:
    placed = shop.checkout.place_order(order(("MUG", 2)), idempotency_key="k1")
    clock.advance(HOLD + timedelta(seconds=1))
    gateway.outage.add("capture")  # a capture asked for now would fail the test
    with pytest.raises(PaymentDeclined) as caught:
        shop.checkout.ship(placed.id, carrier="DHL", tracking_number="T1")
    assert caught.value.decline_code == "authorization_expired"
    assert shop.orders.get(placed.id).status is OrderStatus.CANCELLED
    assert shop.inventory.stock("MUG").reserved == 0


def test_a_void_refused_because_the_payment_was_captured_refunds_it(
    shop: Platform, gateway: SandboxPaymentGateway
) -> None:
    """Captured behind the library's back (a capture whose record was lost, or one made in
    the provider's dashboard): cancelling the order learns so from the refused void, and
    gives the money back instead of failing, now and at every later sweep."""
    placed = shop.checkout.place_order(order(("MUG", 2)), idempotency_key="k1")
    (auth,) = gateway.authorizations()
    gateway.capture(authorization_id=auth.id, amount=Money(2500, "EUR"),
                    idempotency_key="dashboard")
    cancelled = shop.checkout.cancel(placed.id)
    assert (cancelled.status, cancelled.finished) == (OrderStatus.CANCELLED, True)
    payment = shop.orders.payment(cancelled)
    assert payment is not None and payment.status is PaymentStatus.REFUNDED
    assert payment.captured == payment.refunded == Money(2500, "EUR")
    ((status, captured, refunded),) = [(a.status, a.captured, a.refunded)
                                       for a in gateway.authorizations()]
    assert (status, captured, refunded) == ("captured", 2500, 2500)
    assert shop.inventory.stock("MUG").reserved == 0
    assert shop.checkout.recover(grace=timedelta(0)).failed == ()
    check_invariants(shop.order_store, shop.inventory_store, gateway)


def test_a_partial_capture_made_in_the_dashboard_is_refunded_as_made(
    shop: Platform, gateway: SandboxPaymentGateway
) -> None:
    placed = shop.checkout.place_order(order(("MUG", 2)), idempotency_key="k1")
    (auth,) = gateway.authorizations()
    gateway.capture(authorization_id=auth.id, amount=Money(1000, "EUR"),
                    idempotency_key="dashboard")
    shop.checkout.cancel(placed.id)
    payment = shop.orders.payment(shop.orders.get(placed.id))
    assert payment is not None
    assert (payment.captured, payment.refunded) == (Money(1000, "EUR"), Money(1000, "EUR"))
    ((captured, refunded),) = [(a.captured, a.refunded) for a in gateway.authorizations()]
    assert (captured, refunded) == (1000, 1000)
    check_invariants(shop.order_store, shop.inventory_store, gateway)


def test_a_cancel_whose_refund_of_a_capture_is_refused_says_so(
    shop: Platform, gateway: SandboxPaymentGateway
) -> None:
    placed = shop.checkout.place_order(order(("MUG", 2)), idempotency_key="k1")
    (auth,) = gateway.authorizations()
    gateway.capture(authorization_id=auth.id, amount=Money(2500, "EUR"),
                    idempotency_key="dashboard")
    gateway.declines.add("refund")
    with pytest.raises(PaymentDeclined) as refused:
        shop.checkout.cancel(placed.id)
    assert refused.value.order_id == placed.id
    gateway.declines.clear()
    cancelled = shop.orders.get(placed.id)
    assert (cancelled.status, cancelled.finished) == (OrderStatus.CANCELLED, True)
    # the money is still captured: the admin gives it back, as for any captured payment
    shop.checkout.refund(placed.id, reason="cancelled after capture")
    check_invariants(shop.order_store, shop.inventory_store, gateway)

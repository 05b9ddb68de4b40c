"""A crash between any two durable steps, then recover(): every invariant holds again.

The crash is a BaseException raised from the saga's step hook, so no compensation code runs,
exactly as if the process had died there. Recovery runs on a new platform over the same stores.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from commerce_core import (
    IdempotencyKeyInUse,
    Money,
    Order,
    OrderStatus,
    PaymentUnavailable,
    Platform,
    RetryPolicy,
)
from commerce_core.inventory import InventoryStore
from commerce_core.orders import OrderStore, SagaStep
from commerce_core.testing import ManualClock, SandboxPaymentGateway, check_invariants
from tests.conftest import make_stores, order, seed


class SimulatedCrash(BaseException):
    """Not an Exception: nothing in the library may catch it, as with a real crash."""


class World:
    """Two stores and a provider that outlive the platform that crashes on them."""

    def __init__(self, backend: str, folder: Path) -> None:
        self.backend, self.folder = backend, folder
        self.gateway = SandboxPaymentGateway()
        self.clock = ManualClock()
        self.stores: tuple[OrderStore, InventoryStore] = make_stores(backend, folder)

    def platform(self, crash_at: str | None = None, skip: int = 0) -> Platform:
        seen = {"count": 0}

        def hook(step: str, order: Order) -> None:
            if step == crash_at:
                seen["count"] += 1
                if seen["count"] > skip:
                    raise SimulatedCrash(step)

        return Platform.from_adapters(
            order_store=self.stores[0], inventory_store=self.stores[1],
            payment_gateway=self.gateway, clock=self.clock, retry=RetryPolicy.immediate(),
            on_step=hook,
        )

    def restart(self) -> Platform:
        """A new process: fresh connections to the same databases, the same provider."""
        if self.backend == "sqlite":
            for store in self.stores:
                store.close()
            self.stores = make_stores(self.backend, self.folder)
        return self.platform()

    def check(self) -> None:
        check_invariants(*self.stores, self.gateway)


@pytest.fixture
def world(backend: str, tmp_path: Path) -> Iterator[World]:
    w = World(backend, tmp_path)
    yield w
    for store in w.stores:
        store.close()


APPROVED = ["started", "stock_reserved", "payment_authorized",
            "stock_held", "confirmed"]
REFUSED = ["started", "stock_reserved", "compensating", "stock_released",
           "compensated"]


@pytest.mark.parametrize(
    ("token", "point", "outcome"),
    [("tok_visa", p, OrderStatus.CONFIRMED) for p in APPROVED]
    + [("tok_declined", p, OrderStatus.FAILED) for p in REFUSED]
    + [("tok_timeout", p, OrderStatus.FAILED) for p in REFUSED],
)
def test_a_crash_anywhere_in_place_order_is_recovered(
    world: World, token: str, point: str, outcome: OrderStatus
) -> None:
    crashing = world.platform(crash_at=point)
    seed(crashing)
    with pytest.raises(SimulatedCrash):
        crashing.checkout.place_order(order(("MUG", 3), ("POT", 1), token=token),
                                      idempotency_key="k1")
    restarted = world.restart()
    report = restarted.checkout.recover(grace=timedelta(0))
    assert report.unfinished == ()
    (recovered,) = restarted.orders.list().items
    assert recovered.status is outcome and recovered.finished
    world.check()
    expected_mugs = 7 if outcome is OrderStatus.CONFIRMED else 10
    assert restarted.inventory.availability(["MUG"])["MUG"] == expected_mugs
    live = [a for a in world.gateway.authorizations() if a.status == "authorized"]
    assert len(live) == (1 if outcome is OrderStatus.CONFIRMED else 0)
    if outcome is OrderStatus.CONFIRMED:  # the client's retry now gets the recovered order
        again = restarted.checkout.place_order(order(("MUG", 3), ("POT", 1), token=token),
                                               idempotency_key="k1")
        assert again.id == recovered.id


def test_an_in_flight_order_is_refused_as_in_use_until_recovered(world: World) -> None:
    crashing = world.platform(crash_at="stock_reserved")
    seed(crashing)
    with pytest.raises(SimulatedCrash):
        crashing.checkout.place_order(order(("MUG", 1)), idempotency_key="k1")
    restarted = world.restart()
    with pytest.raises(IdempotencyKeyInUse):
        restarted.checkout.place_order(order(("MUG", 1)), idempotency_key="k1")
    assert restarted.checkout.recover().examined == 0  # still within the grace period
    world.clock.advance(timedelta(minutes=2))
    assert restarted.checkout.recover().finished != ()
    world.check()


@pytest.mark.parametrize("point", ["cancelling", "stock_released", "compensated"])
def test_a_crash_while_cancelling_is_recovered(world: World, point: str) -> None:
    platform = world.platform(crash_at=point)
    seed(platform)
    placed = platform.checkout.place_order(order(("MUG", 2)), idempotency_key="k1")
    with pytest.raises(SimulatedCrash):
        platform.checkout.cancel(placed.id)
    restarted = world.restart()
    restarted.checkout.recover(grace=timedelta(0))
    assert restarted.orders.get(placed.id).status is OrderStatus.CANCELLED
    assert restarted.inventory.availability(["MUG"])["MUG"] == 10
    world.check()


@pytest.mark.parametrize("point", ["shipping", "payment_captured", "stock_committed", "shipped"])
def test_a_crash_while_shipping_is_recovered(world: World, point: str) -> None:
    platform = world.platform(crash_at=point)
    seed(platform)
    placed = platform.checkout.place_order(order(("MUG", 2)), idempotency_key="k1")
    with pytest.raises(SimulatedCrash):
        platform.checkout.ship(placed.id, carrier="DHL", tracking_number="1")
    restarted = world.restart()
    restarted.checkout.recover(grace=timedelta(0))
    shipped = restarted.orders.get(placed.id)
    assert shipped.status is OrderStatus.SHIPPED
    stock = restarted.inventory.stock("MUG")
    assert (stock.on_hand, stock.reserved) == (8, 0)
    (auth,) = world.gateway.authorizations()
    assert (auth.status, auth.captured) == ("captured", 2500)
    world.check()


@pytest.mark.parametrize("point", ["refunding", "refunded"])
def test_a_crash_while_refunding_is_recovered_without_refunding_twice(
    world: World, point: str
) -> None:
    platform = world.platform(crash_at=point)
    seed(platform)
    placed = platform.checkout.place_order(order(("MUG", 2)), idempotency_key="k1")
    platform.checkout.ship(placed.id, carrier="DHL", tracking_number="1")
    with pytest.raises(SimulatedCrash):
        platform.checkout.refund(placed.id, amount=Money(1000, "EUR"), reason="dent")
    restarted = world.restart()
    restarted.checkout.recover(grace=timedelta(0))
    (auth,) = world.gateway.authorizations()
    assert auth.refunded == 1000
    payment = restarted.orders.payment(restarted.orders.get(placed.id))
    assert payment is not None and payment.refunded == Money(1000, "EUR")
    world.check()


def test_a_lost_authorization_response_is_found_by_key_and_voided(world: World) -> None:
    platform = world.platform()
    seed(platform)
    world.gateway.lose_responses = {"authorize"}
    with pytest.raises(PaymentUnavailable):
        platform.checkout.place_order(order(("MUG", 1)), idempotency_key="k1")
    (auth,) = world.gateway.authorizations()  # the provider did authorize, once
    assert auth.status == "voided"
    world.check()


def test_a_void_that_cannot_reach_the_provider_is_finished_by_recovery(world: World) -> None:
    platform = world.platform()
    seed(platform)
    placed = platform.checkout.place_order(order(("MUG", 2)), idempotency_key="k1")
    world.gateway.outage = {"void"}
    with pytest.raises(PaymentUnavailable):
        platform.checkout.cancel(placed.id)
    cancelled = platform.orders.get(placed.id)
    assert cancelled.status is OrderStatus.CANCELLED
    assert cancelled.saga_step is SagaStep.COMPENSATING  # resumable, not forgotten
    world.gateway.outage = set()
    report = platform.checkout.recover(grace=timedelta(0))
    assert report.finished == (placed.id,)
    assert [a.status for a in world.gateway.authorizations()] == ["voided"]
    world.check()


def test_a_capture_that_cannot_reach_the_provider_is_finished_later(world: World) -> None:
    platform = world.platform()
    seed(platform)
    placed = platform.checkout.place_order(order(("MUG", 2)), idempotency_key="k1")
    world.gateway.outage = {"capture"}
    with pytest.raises(PaymentUnavailable):
        platform.checkout.ship(placed.id, carrier="DHL", tracking_number="1")
    assert platform.orders.get(placed.id).saga_step is SagaStep.SHIPPING
    world.gateway.outage = set()
    assert platform.checkout.ship(placed.id, carrier="DHL", tracking_number="1").status is (
        OrderStatus.SHIPPED)
    world.check()


def test_a_slow_checkout_whose_reservation_expired_fails_cleanly(world: World) -> None:
    platform = world.platform(crash_at="payment_authorized")
    seed(platform)
    with pytest.raises(SimulatedCrash):
        platform.checkout.place_order(order(("MUG", 2)), idempotency_key="k1")
    world.clock.advance(timedelta(hours=1))
    restarted = world.restart()
    assert restarted.inventory.expire_reservations() == 1
    restarted.checkout.recover()
    (failed,) = restarted.orders.list().items
    assert (failed.status, failed.failure_reason) == (OrderStatus.FAILED, "reservation-expired")
    assert [a.status for a in world.gateway.authorizations()] == ["voided"]
    world.check()

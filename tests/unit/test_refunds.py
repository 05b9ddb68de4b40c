"""Refunds the provider refuses, refunds made outside the library, repeated refunds, and a
recovery sweep that no single order can stop."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from commerce_core import (
    ConcurrencyConflict,
    IdempotencyKeyReused,
    InvalidTransition,
    Money,
    Order,
    OrderStatus,
    PaymentDeclined,
    PaymentUnavailable,
    Platform,
)
from commerce_core.inventory import LineRequest
from commerce_core.orders import SagaStep
from commerce_core.payments import PaymentStatus
from commerce_core.testing import ManualClock, SandboxPaymentGateway, check_invariants
from tests.conftest import order, seed
from tests.helpers import platform_on


def _shipped(platform: Platform, key: str = "k1", sku: str = "MUG") -> str:
    placed = platform.checkout.place_order(order((sku, 2)), idempotency_key=key)
    platform.checkout.ship(placed.id, carrier="DHL", tracking_number=key)
    return placed.id


def _authorization(platform: Platform, order_id: str) -> str:
    payment = platform.orders.payment(platform.orders.get(order_id))
    assert payment is not None and payment.authorization_id is not None
    return payment.authorization_id


def test_a_refund_refused_because_of_a_dashboard_refund_learns_it_and_the_rest_refunds(
    platform: Platform, gateway: SandboxPaymentGateway
) -> None:
    seed(platform)
    order_id = _shipped(platform)  # 25.00 captured
    gateway.refund_outside(_authorization(platform, order_id), Money(700, "EUR"))
    with pytest.raises(PaymentDeclined) as refused:
        platform.checkout.refund(order_id, reason="customer returned it")  # all 25.00
    assert refused.value.order_id == order_id
    after = platform.orders.get(order_id)
    assert (after.status, after.saga_step) == (OrderStatus.SHIPPED, SagaStep.DONE)
    payment = platform.orders.payment(after)
    assert payment is not None and payment.pending_refund is None
    assert payment.refunded == Money(700, "EUR")  # learnt from the provider
    rest = platform.checkout.refund(order_id, reason="customer returned it")
    assert rest.status is OrderStatus.REFUNDED
    final = platform.orders.payment(rest)
    assert final is not None and final.refunded == final.captured == Money(2500, "EUR")
    (auth,) = gateway.authorizations()
    assert [r["key"] for r in auth.refunds] == [None, f"{order_id}:refund:2"]
    assert platform.checkout.recover(grace=timedelta(0)).examined == 0
    check_invariants(platform.order_store, platform.inventory_store, gateway)


def test_every_refund_attempt_asks_the_provider_under_a_key_of_its_own(
    platform: Platform, gateway: SandboxPaymentGateway
) -> None:
    seed(platform)
    order_id = _shipped(platform)
    gateway.declines.add("refund")
    for _ in range(2):
        with pytest.raises(PaymentDeclined):
            platform.checkout.refund(order_id, amount=Money(500, "EUR"), reason="dented")
    gateway.declines.clear()
    done = platform.checkout.refund(order_id, amount=Money(500, "EUR"), reason="dented")
    payment = platform.orders.payment(done)
    assert payment is not None and payment.refunded == Money(500, "EUR")
    (auth,) = gateway.authorizations()
    assert [r["key"] for r in auth.refunds] == [f"{order_id}:refund:3"]
    check_invariants(platform.order_store, platform.inventory_store, gateway)


class _KeyReusingGateway(SandboxPaymentGateway):
    """A provider that answers a refund with "this key was used for another request"."""

    def refund(self, *, authorization_id: str, amount: Money, idempotency_key: str) -> str:
        raise IdempotencyKeyReused(idempotency_key)


def test_a_key_reuse_answer_fails_the_refund_clearly_and_leaves_nothing_stuck(
    backend: str, tmp_path: Path, clock: ManualClock
) -> None:
    gateway = _KeyReusingGateway()
    with platform_on(backend, tmp_path, clock, gateway) as platform:
        seed(platform)
        order_id = _shipped(platform)
        with pytest.raises(PaymentDeclined) as refused:
            platform.checkout.refund(order_id, amount=Money(100, "EUR"), reason="x")
        assert refused.value.decline_code == "idempotency_key_reused"
        assert "used before" in str(refused.value)
        kept = platform.orders.get(order_id)
        assert (kept.status, kept.saga_step) == (OrderStatus.SHIPPED, SagaStep.DONE)
        report = platform.checkout.recover(grace=timedelta(0))
        assert (report.examined, report.failed) == (0, ())


def test_a_repeated_refund_resumes_the_one_the_provider_outage_cut_short(
    platform: Platform, gateway: SandboxPaymentGateway
) -> None:
    seed(platform)
    order_id = _shipped(platform)
    gateway.outage.add("refund")
    with pytest.raises(PaymentUnavailable):
        platform.checkout.refund(order_id, amount=Money(500, "EUR"), reason="dented")
    assert platform.orders.get(order_id).saga_step is SagaStep.REFUNDING
    gateway.outage.clear()
    resumed = platform.checkout.refund(order_id, amount=Money(500, "EUR"), reason="dented")
    assert resumed.saga_step is SagaStep.DONE
    payment = platform.orders.payment(resumed)
    assert payment is not None and payment.refunded == Money(500, "EUR")
    (auth,) = gateway.authorizations()
    assert auth.refunded == 500  # once
    check_invariants(platform.order_store, platform.inventory_store, gateway)


def test_a_refund_under_a_key_is_made_once_however_often_it_is_asked_for(
    platform: Platform, gateway: SandboxPaymentGateway
) -> None:
    seed(platform)
    order_id = _shipped(platform)
    gateway.lose_responses.add("refund")  # the refund is made; its answer never arrives
    with pytest.raises(PaymentUnavailable):
        platform.checkout.refund(order_id, amount=Money(500, "EUR"), reason="dent",
                                 idempotency_key="refund-A")
    gateway.lose_responses.clear()
    for _ in range(3):  # the admin's retries, after the answer was lost and after it came
        again = platform.checkout.refund(order_id, amount=Money(500, "EUR"), reason="dent",
                                         idempotency_key="refund-A")
        payment = platform.orders.payment(again)
        assert payment is not None and payment.refunded == Money(500, "EUR")
    (auth,) = gateway.authorizations()
    assert auth.refunded == 500
    with pytest.raises(IdempotencyKeyReused):
        platform.checkout.refund(order_id, amount=Money(600, "EUR"), reason="dent",
                                 idempotency_key="refund-A")
    with pytest.raises(IdempotencyKeyReused):
        platform.checkout.refund(order_id, amount=Money(500, "EUR"), reason="other",
                                 idempotency_key="refund-A")
    check_invariants(platform.order_store, platform.inventory_store, gateway)


def test_a_refused_refund_under_a_key_is_refused_again_without_asking_twice(
    platform: Platform, gateway: SandboxPaymentGateway
) -> None:
    seed(platform)
    order_id = _shipped(platform)
    gateway.declines.add("refund")
    with pytest.raises(PaymentDeclined):
        platform.checkout.refund(order_id, reason="all", idempotency_key="r1")
    gateway.declines.clear()  # the provider would take it now: the repeat still answers as
    with pytest.raises(PaymentDeclined):  # the first did
        platform.checkout.refund(order_id, reason="all", idempotency_key="r1")
    (auth,) = gateway.authorizations()
    assert auth.refunded == 0
    assert platform.checkout.refund(order_id, reason="all", idempotency_key="r2").status \
        is OrderStatus.REFUNDED


def test_a_refund_of_a_payment_not_captured_is_an_invalid_transition(
    platform: Platform,
) -> None:
    seed(platform)
    placed = platform.checkout.place_order(order(("MUG", 1)), idempotency_key="k1")
    with pytest.raises(InvalidTransition):
        platform.checkout.refund(placed.id, reason="nothing captured")


class _BrokenVoid(SandboxPaymentGateway):
    """A provider that refuses to void one payment with an error the saga cannot handle."""

    broken: str | None = None

    def void(self, *, authorization_id: str, idempotency_key: str) -> None:
        if authorization_id == self.broken:
            raise PaymentDeclined("no such authorization", decline_code="resource_missing")
        super().void(authorization_id=authorization_id, idempotency_key=idempotency_key)


def test_one_order_recovery_cannot_finish_never_stops_the_sweep(
    backend: str, tmp_path: Path, clock: ManualClock
) -> None:
    gateway = _BrokenVoid()
    with platform_on(backend, tmp_path, clock, gateway) as platform:
        seed(platform)
        stuck = platform.checkout.place_order(order(("MUG", 1)), idempotency_key="k1")
        other = platform.checkout.place_order(order(("TEA", 1)), idempotency_key="k2")
        gateway.outage.add("void")
        for placed in (stuck, other):
            with pytest.raises(PaymentUnavailable):
                platform.checkout.cancel(placed.id)
            assert platform.orders.get(placed.id).saga_step is SagaStep.COMPENSATING
        gateway.outage.clear()
        gateway.broken = _authorization(platform, stuck.id)
        platform.inventory.reserve("r-stale", reference="manual", ttl=timedelta(minutes=1),
                                   lines=[LineRequest("POT", 1)])
        clock.advance(timedelta(minutes=2))
        report = platform.checkout.recover(grace=timedelta(0))
        assert [(f.order_id, f.error) for f in report.failed] == [(stuck.id, "payment-declined")]
        assert "no such authorization" in report.failed[0].detail
        assert report.finished == (other.id,)
        assert report.expired_reservations == 1
        assert platform.orders.get(other.id).finished
        payment = platform.orders.payment(platform.orders.get(other.id))
        assert payment is not None and payment.status is PaymentStatus.VOIDED


def test_orders_recovery_cannot_finish_wait_their_turn_behind_the_others(
    platform: Platform, gateway: SandboxPaymentGateway, clock: ManualClock
) -> None:
    """A sweep takes the orders left longest first, a batch at a time; one it cannot finish
    is set aside (touched), so it cannot take a place in every sweep while newer orders
    never get one."""
    seed(platform)
    gateway.declines.add("void")  # the provider refuses these voids, every time
    stuck = []
    for n in range(3):
        placed = platform.checkout.place_order(order(("TEA", 1), customer=f"c{n}"),
                                               idempotency_key=f"k{n}")
        with pytest.raises(PaymentDeclined):
            platform.checkout.cancel(placed.id)
        stuck.append(placed.id)
    gateway.declines.clear()
    late = platform.checkout.place_order(order(("TEA", 1)), idempotency_key="late")
    gateway.outage.add("void")
    with pytest.raises(PaymentUnavailable):
        platform.checkout.cancel(late.id)
    gateway.outage.clear()
    gateway.declines.add("void")  # still refused for the stuck ones (replayed by key)
    clock.advance(timedelta(minutes=5))
    first = platform.checkout.recover(limit=3)
    assert sorted(f.order_id for f in first.failed) == sorted(stuck)
    assert platform.orders.get(late.id).saga_step is SagaStep.COMPENSATING
    gateway.declines.clear()
    second = platform.checkout.recover(limit=3)
    assert second.finished == (late.id,), second
    payment = platform.orders.payment(platform.orders.get(late.id))
    assert payment is not None and payment.status is PaymentStatus.VOIDED


def test_all_of_it_asked_while_part_is_in_flight_finishes_that_part_then_the_rest(
    platform: Platform, gateway: SandboxPaymentGateway
) -> None:
    seed(platform)
    order_id = _shipped(platform)
    gateway.outage.add("refund")
    with pytest.raises(PaymentUnavailable):
        platform.checkout.refund(order_id, amount=Money(500, "EUR"), reason="returned")
    gateway.outage.clear()
    done = platform.checkout.refund(order_id, reason="returned")  # no amount: all of it
    assert done.status is OrderStatus.REFUNDED
    (auth,) = gateway.authorizations()
    assert [r["amount"] for r in auth.refunds] == [500, 2000]


def test_a_refund_that_loses_a_race_with_another_is_a_conflict_to_retry(
    platform: Platform, gateway: SandboxPaymentGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another refund starts between this one's reads of the order and of its payment:
    a race (409 concurrency-conflict, not kept under an idempotency key), and the retry
    finishes the other refund and makes its own."""
    seed(platform)
    order_id = _shipped(platform)
    load = platform.checkout.load
    gateway.outage.add("refund")

    def another_refund_meanwhile(wanted: str, customer_id: str | None = None) -> Order:
        found = load(wanted, customer_id)
        monkeypatch.setattr(platform.checkout, "load", load)  # once
        with pytest.raises(PaymentUnavailable):  # left in flight
            platform.checkout.refund(order_id, amount=Money(500, "EUR"), reason="A")
        return found

    monkeypatch.setattr(platform.checkout, "load", another_refund_meanwhile)
    with pytest.raises(ConcurrencyConflict):
        platform.checkout.refund(order_id, amount=Money(800, "EUR"), reason="B")
    gateway.outage.clear()
    retried = platform.checkout.refund(order_id, amount=Money(800, "EUR"), reason="B")
    payment = platform.orders.payment(retried)
    assert payment is not None and payment.refunded == Money(1300, "EUR")
    check_invariants(platform.order_store, platform.inventory_store, gateway)

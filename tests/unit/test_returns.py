"""Returns, on every backend: never more returned than shipped, however many ask at once; a
restocked return books its units once under the ledger reason ``return``; its refund is its
units' share of what was paid (discounts and taxes included, shipping when asked), made
once; a crash at any step is finished by recover()."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from commerce_core import (
    ConcurrencyConflict,
    InvalidInput,
    InvalidTransition,
    Money,
    NotFound,
    OrderStatus,
    PaymentDeclined,
    PaymentUnavailable,
    Platform,
    ReturnExceedsShipped,
    ReturnLine,
    ReturnStatus,
    ShipmentLine,
    TooManyReturns,
)
from commerce_core.checkout.returns import MAX_RETURNS
from commerce_core.orders import SagaStep
from commerce_core.testing import ManualClock, SandboxPaymentGateway
from tests.conftest import order
from tests.helpers import platform_on
from tests.unit.test_partial_shipments import (
    _check,
    _events,
    _levels,
    _stocked,
    place_priced,
)
from tests.unit.test_recovery import SimulatedCrash, World, world  # noqa: F401 (a fixture)

EUR = "EUR"


def _shipped(platform: Platform, *lines: tuple[str, int], ship: list[ShipmentLine] | None = None,
             customer: str = "c-1") -> str:
    """An order of ``lines`` placed and shipped (``ship``: that parcel only); its id."""
    placed = platform.checkout.place_order(order(*lines, customer=customer),
                                           idempotency_key=f"k-{customer}")
    platform.checkout.ship(placed.id, carrier="DHL", tracking_number="P1", lines=ship)
    return placed.id


def _ledger(platform: Platform, sku: str) -> list[tuple[str, int, str, str | None]]:
    return [(m.warehouse, m.delta, m.reason, m.reference)
            for m in platform.inventory.movements(sku) if m.reason == "return"]


def test_a_return_is_requested_received_into_stock_and_refunded_its_share(
    platform: Platform, gateway: SandboxPaymentGateway
) -> None:
    _stocked(platform)
    order_id = _shipped(platform, ("MUG", 2), ("POT", 1))
    asked = platform.checkout.request_return(order_id, lines=[ReturnLine("MUG", 1)],
                                             reason="too small", customer_id="c-1")
    assert (asked.status, asked.order_id, asked.lines, asked.refund) == (
        ReturnStatus.REQUESTED, order_id, (ReturnLine("MUG", 1),), None)
    assert asked.id == f"ret_{order_id}_1"
    assert platform.orders.returns(order_id) == (asked,)
    assert platform.orders.get_return(asked.id, customer_id="c-1") == asked
    with pytest.raises(NotFound):  # another customer's: not found
        platform.orders.get_return(asked.id, customer_id="c-2")

    received = platform.checkout.receive_return(asked.id, warehouse="BER", restock=True)
    assert (received.status, received.warehouse, received.restock) == (
        ReturnStatus.RECEIVED, "BER", True)
    assert received.received_at is not None
    mug = _levels(platform, "MUG")
    assert sum(on_hand for on_hand, _ in mug.values()) == 6 - 2 + 1
    assert _ledger(platform, "MUG") == [("BER", 1, "return", asked.id)]

    refunded = platform.checkout.refund_return(asked.id)
    assert (refunded.status, refunded.refund) == (ReturnStatus.REFUNDED, Money(1250, EUR))
    assert refunded.shipping_refund == Money(0, EUR) and not refunded.include_shipping
    found = platform.orders.get(order_id)
    assert found.status is OrderStatus.SHIPPED and found.finished
    assert found.returned_units == {"MUG": 1} and found.returnable == {"MUG": 1, "POT": 1}
    (auth,) = gateway.authorizations()
    assert (auth.captured, auth.refunded) == (6400, 1250)
    assert _events(platform, order_id)[-4:] == [
        "return.requested", "return.received", "order.refunded", "return.refunded"]
    _check(platform, gateway)

    # the rest comes back: every captured cent is refunded, and the order is refunded
    rest = platform.checkout.request_return(
        order_id, lines=[ReturnLine("MUG", 1), ReturnLine("POT", 1)], reason="no longer needed")
    platform.checkout.receive_return(rest.id, warehouse="AMS", restock=False)  # written off
    assert _ledger(platform, "MUG") == [("BER", 1, "return", asked.id)]
    done = platform.checkout.refund_return(rest.id)
    assert done.refund == Money(1250 + 3900, EUR)
    assert platform.orders.get(order_id).status is OrderStatus.REFUNDED
    with pytest.raises(ReturnExceedsShipped):  # everything is back
        platform.checkout.request_return(order_id, lines=[ReturnLine("MUG", 1)], reason="x")
    _check(platform, gateway)


def test_a_return_s_share_includes_its_discount_and_tax_and_shipping_only_when_asked(
    tmp_path: Path, backend: str, clock: ManualClock, gateway: SandboxPaymentGateway
) -> None:
    with platform_on(backend, tmp_path, clock, gateway) as platform:
        placed = place_priced(platform)  # shares: MUG 2677, POT 4177, charges 589
        platform.checkout.ship(placed.id, carrier="DHL", tracking_number="P1")
        first = platform.checkout.request_return(placed.id, lines=[ReturnLine("MUG", 1)],
                                                 reason="a")
        platform.checkout.receive_return(first.id, warehouse="BER", restock=True)
        # one of two mugs: 2677 // 2 = 1338, shipping asked for: 589 on top
        first = platform.checkout.refund_return(first.id, include_shipping=True)
        assert (first.refund, first.shipping_refund) == (Money(1338 + 589, EUR),
                                                         Money(589, EUR))
        second = platform.checkout.request_return(
            placed.id, lines=[ReturnLine("MUG", 1), ReturnLine("POT", 1)], reason="b")
        platform.checkout.receive_return(second.id, warehouse="BER", restock=True)
        # the other mug is the rest of its share (1339); the shipping went back already
        second = platform.checkout.refund_return(second.id, include_shipping=True)
        assert (second.refund, second.shipping_refund) == (Money(1339 + 4177, EUR),
                                                           Money(0, EUR))
        payment = platform.orders.payment(placed)
        assert payment is not None and payment.refunded == payment.captured == placed.total
        assert platform.orders.get(placed.id).status is OrderStatus.REFUNDED
        _check(platform, gateway)


def test_more_than_was_shipped_and_not_returned_is_refused_with_nothing_changed(
    platform: Platform, gateway: SandboxPaymentGateway
) -> None:
    _stocked(platform)
    order_id = _shipped(platform, ("MUG", 3), ("POT", 1), ship=[ShipmentLine("MUG", 2)])
    platform.checkout.request_return(order_id, lines=[ReturnLine("MUG", 1)], reason="a")
    before = platform.orders.get(order_id)
    for lines, sku, returnable in [
        ([ReturnLine("MUG", 2)], "MUG", 1),                        # 2 shipped, 1 asked back
        ([ReturnLine("POT", 1)], "POT", 0),                        # not shipped yet
        ([ReturnLine("TEA", 1)], "TEA", 0),                        # not in the order
        ([ReturnLine("MUG", 1), ReturnLine("MUG", 1)], "MUG", 1),  # 2 in all
    ]:
        with pytest.raises(ReturnExceedsShipped) as refused:
            platform.checkout.request_return(order_id, lines=lines, reason="b")
        assert (refused.value.sku, refused.value.returnable) == (sku, returnable)
    bad: list[tuple[Any, Any, str]] = [
        ([], "r", "lines"), ("MUG", "r", "lines"), ([ShipmentLine("MUG", 1)], "r", "lines[0]"),
        ([ReturnLine("MUG", 0)], "r", "lines[0].quantity"),
        ([ReturnLine("MUG", True)], "r", "lines[0].quantity"),
        ([ReturnLine("", 1)], "r", "lines[0].sku"),
        ([ReturnLine("MUG", 1)], "  ", "reason"), ([ReturnLine("MUG", 1)], "a\x00b", "reason"),
        ([ReturnLine("MUG", 1)], "x" * 501, "reason"), ([ReturnLine("MUG", 1)], None, "reason"),
    ]
    for lines, reason, field in bad:
        with pytest.raises(InvalidInput) as invalid:
            platform.checkout.request_return(order_id, lines=lines, reason=reason)
        assert field in [e.path for e in invalid.value.errors], (lines, reason)
    with pytest.raises(NotFound):  # another customer's order
        platform.checkout.request_return(order_id, lines=[ReturnLine("MUG", 1)], reason="c",
                                         customer_id="c-2")
    assert platform.orders.get(order_id) == before
    _check(platform, gateway)


def test_each_step_keeps_to_the_return_s_states(
    platform: Platform, gateway: SandboxPaymentGateway
) -> None:
    _stocked(platform)
    order_id = _shipped(platform, ("MUG", 3))
    first = platform.checkout.request_return(order_id, lines=[ReturnLine("MUG", 2)], reason="a")
    with pytest.raises(InvalidTransition):  # not received yet
        platform.checkout.refund_return(first.id)
    receipts: list[tuple[str, Any, str]] = [
        ("NOPE", True, "warehouse"), ("NOPE", False, "warehouse"), ("", True, "warehouse"),
        ("BER", "yes", "restock")]
    for warehouse, restock, field in receipts:
        with pytest.raises(InvalidInput) as invalid:
            platform.checkout.receive_return(first.id, warehouse=warehouse, restock=restock)
        assert invalid.value.errors[0].path == field
    for unknown in ["ret_nope_1", "nope", f"ret_{order_id}_9", f"ret_{order_id}_x", "ret__1"]:
        with pytest.raises(NotFound):
            platform.checkout.receive_return(unknown, warehouse="BER", restock=True)
        with pytest.raises(NotFound):
            platform.orders.get_return(unknown)
    assert platform.orders.returns(order_id) == (first,)

    received = platform.checkout.receive_return(first.id, warehouse="BER", restock=True)
    # the same receipt again is the one made; another is refused; nothing booked twice
    assert platform.checkout.receive_return(first.id, warehouse="BER", restock=True) == received
    with pytest.raises(InvalidTransition):
        platform.checkout.receive_return(first.id, warehouse="AMS", restock=True)
    assert _ledger(platform, "MUG") == [("BER", 2, "return", first.id)]

    refunded = platform.checkout.refund_return(first.id)
    assert platform.checkout.refund_return(first.id) == refunded  # made once
    with pytest.raises(InvalidTransition):  # asked otherwise: it is refunded already
        platform.checkout.refund_return(first.id, include_shipping=True)
    with pytest.raises(InvalidTransition):
        platform.checkout.reject_return(first.id)
    (auth,) = gateway.authorizations()
    assert auth.refunded == refunded.refund.amount == 2 * 1250  # type: ignore[union-attr]

    # a rejected return that never came back frees its units for another request
    second = platform.checkout.request_return(order_id, lines=[ReturnLine("MUG", 1)], reason="b")
    with pytest.raises(ReturnExceedsShipped):
        platform.checkout.request_return(order_id, lines=[ReturnLine("MUG", 1)], reason="c")
    rejected = platform.checkout.reject_return(second.id, reason="outside the 30 days")
    assert (rejected.status, rejected.rejection_reason) == (ReturnStatus.REJECTED,
                                                            "outside the 30 days")
    assert platform.checkout.reject_return(second.id) == rejected
    with pytest.raises(InvalidTransition):
        platform.checkout.receive_return(second.id, warehouse="BER", restock=True)
    # one rejected after it was received (written off) stays returned
    third = platform.checkout.request_return(order_id, lines=[ReturnLine("MUG", 1)], reason="d")
    platform.checkout.receive_return(third.id, warehouse="BER", restock=False)
    platform.checkout.reject_return(third.id, reason="damaged by the customer")
    with pytest.raises(ReturnExceedsShipped):
        platform.checkout.request_return(order_id, lines=[ReturnLine("MUG", 1)], reason="e")
    assert platform.orders.get(order_id).returned_units == {"MUG": 3}
    events = _events(platform, order_id)
    assert events.count("return.rejected") == 2 and events.count("return.refunded") == 1
    _check(platform, gateway)


def test_an_order_holds_at_most_so_many_returns(
    platform: Platform, gateway: SandboxPaymentGateway
) -> None:
    _stocked(platform)
    order_id = _shipped(platform, ("TEA", 2))
    for n in range(MAX_RETURNS):
        made = platform.checkout.request_return(order_id, lines=[ReturnLine("TEA", 1)],
                                                reason=f"r{n}")
        if n < MAX_RETURNS - 1:
            platform.checkout.reject_return(made.id)
    with pytest.raises(TooManyReturns):
        platform.checkout.request_return(order_id, lines=[ReturnLine("TEA", 1)], reason="z")
    assert len(platform.orders.returns(order_id)) == MAX_RETURNS
    _check(platform, gateway)


def test_a_refused_refund_leaves_the_return_received_and_a_later_one_is_made_once(
    platform: Platform, gateway: SandboxPaymentGateway
) -> None:
    _stocked(platform)
    order_id = _shipped(platform, ("MUG", 2))
    asked = platform.checkout.request_return(order_id, lines=[ReturnLine("MUG", 1)], reason="a")
    platform.checkout.receive_return(asked.id, warehouse="BER", restock=True)
    gateway.declines = {"refund"}
    with pytest.raises(PaymentDeclined):
        platform.checkout.refund_return(asked.id)
    found = platform.orders.get_return(asked.id)
    assert (found.status, found.refund) == (ReturnStatus.RECEIVED, None)
    assert platform.orders.get(order_id).finished
    gateway.declines = set()
    assert platform.checkout.refund_return(asked.id).refund == Money(1250, EUR)
    (auth,) = gateway.authorizations()
    assert auth.refunded == 1250
    _check(platform, gateway)


def test_a_refund_the_provider_cannot_take_now_is_finished_by_asking_again_or_recovery(
    platform: Platform, gateway: SandboxPaymentGateway, clock: ManualClock
) -> None:
    _stocked(platform)
    order_id = _shipped(platform, ("MUG", 2))
    asked = platform.checkout.request_return(order_id, lines=[ReturnLine("MUG", 2)], reason="a")
    platform.checkout.receive_return(asked.id, warehouse="BER", restock=True)
    gateway.outage = {"refund"}
    with pytest.raises(PaymentUnavailable):
        platform.checkout.refund_return(asked.id)
    stuck = platform.orders.get(order_id)
    assert stuck.saga_step is SagaStep.REFUNDING_RETURN
    # another command leaves a step this fresh to the process running it (409, try again);
    # an older one it finishes first: the provider still down, 503, nothing changed
    with pytest.raises(ConcurrencyConflict):
        platform.checkout.reject_return(asked.id)
    clock.advance(timedelta(seconds=11))
    with pytest.raises(PaymentUnavailable):
        platform.checkout.reject_return(asked.id)
    assert platform.orders.get(order_id) == stuck
    gateway.outage = set()
    assert platform.checkout.refund_return(asked.id).status is ReturnStatus.REFUNDED
    assert platform.orders.get(order_id).status is OrderStatus.REFUNDED
    (auth,) = gateway.authorizations()
    assert auth.refunded == 2500
    _check(platform, gateway)


def test_a_return_refunded_after_a_dashboard_refund_gets_what_is_left(
    platform: Platform, gateway: SandboxPaymentGateway
) -> None:
    _stocked(platform)
    order_id = _shipped(platform, ("MUG", 2))
    (auth,) = gateway.authorizations()
    gateway.refund_outside(auth.id, Money(2000, EUR))  # 500 left of 2500
    asked = platform.checkout.request_return(order_id, lines=[ReturnLine("MUG", 1)], reason="a")
    platform.checkout.receive_return(asked.id, warehouse="BER", restock=True)
    done = platform.checkout.refund_return(asked.id)  # its share is 1250: 500 is left
    assert done.refund == Money(500, EUR)
    (auth,) = gateway.authorizations()
    assert auth.refunded == 2500
    # the other mug comes back: nothing is left to give, the return is closed at 0
    other = platform.checkout.request_return(order_id, lines=[ReturnLine("MUG", 1)], reason="b")
    platform.checkout.receive_return(other.id, warehouse="BER", restock=True)
    assert platform.checkout.refund_return(other.id).refund == Money(0, EUR)
    assert platform.orders.get(order_id).status is OrderStatus.REFUNDED
    _check(platform, gateway)


def test_cancelling_the_rest_after_a_return_was_refunded_refunds_the_rest_s_share(
    platform: Platform, gateway: SandboxPaymentGateway
) -> None:
    _stocked(platform)
    order_id = _shipped(platform, ("TEA", 3), ship=[ShipmentLine("TEA", 2)])  # 3 x 800
    asked = platform.checkout.request_return(order_id, lines=[ReturnLine("TEA", 1)], reason="a")
    platform.checkout.receive_return(asked.id, warehouse="BER", restock=True)
    platform.checkout.refund_return(asked.id)
    platform.checkout.cancel(order_id)
    payment = platform.orders.payment(platform.orders.get(order_id))
    assert payment is not None and payment.refunded.amount == 2 * 800
    assert _levels(platform, "TEA") == {"BER": (50 - 2 + 1, 0)}
    _check(platform, gateway)


RECEIPT_POINTS = ["receiving_return", "return_restocked", "return_received"]
REFUND_POINTS = ["refunding_return", "return_refunded"]


@pytest.mark.parametrize("point", RECEIPT_POINTS + REFUND_POINTS)
def test_a_crash_at_any_step_of_a_return_is_recovered_and_nothing_happens_twice(
    world: World, point: str  # noqa: F811 (the fixture)
) -> None:
    platform = world.platform()
    _stocked(platform)
    order_id = _shipped(platform, ("MUG", 2), ("POT", 1))
    asked = platform.checkout.request_return(order_id, lines=[ReturnLine("MUG", 2)], reason="a")
    if point in RECEIPT_POINTS:
        with pytest.raises(SimulatedCrash):
            world.platform(crash_at=point).checkout.receive_return(asked.id, warehouse="BER",
                                                                   restock=True)
    else:
        platform.checkout.receive_return(asked.id, warehouse="BER", restock=True)
        with pytest.raises(SimulatedCrash):
            world.platform(crash_at=point).checkout.refund_return(asked.id)
    restarted = world.restart()
    report = restarted.checkout.recover(grace=timedelta(0))
    assert not report.failed
    found = restarted.orders.get(order_id)
    assert found.finished
    back = restarted.orders.get_return(asked.id)
    assert back.status is (ReturnStatus.RECEIVED if point in RECEIPT_POINTS
                           else ReturnStatus.REFUNDED)
    assert _ledger(restarted, "MUG") == [("BER", 2, "return", asked.id)]
    # asked again after recovery: nothing more is booked or refunded
    restarted.checkout.receive_return(asked.id, warehouse="BER", restock=True)
    refunded = restarted.checkout.refund_return(asked.id)
    assert refunded.refund == Money(2500, EUR)
    assert _ledger(restarted, "MUG") == [("BER", 2, "return", asked.id)]
    (auth,) = world.gateway.authorizations()
    assert auth.refunded == 2500
    world.check()


@pytest.mark.parametrize("point", RECEIPT_POINTS + REFUND_POINTS)
def test_a_step_cut_short_is_finished_by_the_same_command_repeated(
    world: World, point: str  # noqa: F811 (the fixture)
) -> None:
    platform = world.platform()
    _stocked(platform)
    order_id = _shipped(platform, ("MUG", 2))
    asked = platform.checkout.request_return(order_id, lines=[ReturnLine("MUG", 1)], reason="a")
    crashing = world.platform(crash_at=point)
    if point in RECEIPT_POINTS:
        with pytest.raises(SimulatedCrash):
            crashing.checkout.receive_return(asked.id, warehouse="BER", restock=True)
    else:
        platform.checkout.receive_return(asked.id, warehouse="BER", restock=True)
        with pytest.raises(SimulatedCrash):
            crashing.checkout.refund_return(asked.id)
    again = world.platform()
    received = again.checkout.receive_return(asked.id, warehouse="BER", restock=True)
    assert received.status in (ReturnStatus.RECEIVED, ReturnStatus.REFUNDED)
    assert again.checkout.refund_return(asked.id).refund == Money(1250, EUR)
    assert _ledger(again, "MUG") == [("BER", 1, "return", asked.id)]
    (auth,) = world.gateway.authorizations()
    assert auth.refunded == 1250
    world.check()


def _race(count: int, act: Any) -> list[str]:
    outcomes: list[str] = []
    start = threading.Barrier(count)

    def run(n: int) -> None:
        start.wait()
        try:
            act(n)
            outcomes.append("done")
        except (ConcurrencyConflict, InvalidTransition, ReturnExceedsShipped) as exc:
            outcomes.append(type(exc).__name__)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


def test_customers_asking_at_once_for_the_last_units_never_return_more_than_shipped(
    backend: str, tmp_path: Path, clock: ManualClock, gateway: SandboxPaymentGateway
) -> None:
    with platform_on(backend, tmp_path, clock, gateway) as platform:
        _stocked(platform)
        order_id = _shipped(platform, ("TEA", 3))
        outcomes = _race(4, lambda n: platform.checkout.request_return(
            order_id, lines=[ReturnLine("TEA", 2)], reason=f"r{n}"))
        found = platform.orders.get(order_id)
        assert outcomes.count("done") == len(found.returns) == 1, outcomes
        assert found.returned_units == {"TEA": 2}
        _check(platform, gateway)


def test_admins_receiving_and_refunding_a_return_at_once_book_and_refund_it_once(
    backend: str, tmp_path: Path, clock: ManualClock, gateway: SandboxPaymentGateway
) -> None:
    with platform_on(backend, tmp_path, clock, gateway) as platform:
        _stocked(platform)
        order_id = _shipped(platform, ("TEA", 4))
        asked = platform.checkout.request_return(order_id, lines=[ReturnLine("TEA", 3)],
                                                 reason="a")
        received = _race(3, lambda n: platform.checkout.receive_return(
            asked.id, warehouse="BER", restock=True))
        assert "done" in received, received
        refunded = _race(3, lambda n: platform.checkout.refund_return(asked.id))
        assert "done" in refunded, refunded
        platform.checkout.recover(grace=timedelta(0))
        assert platform.orders.get_return(asked.id).refund == Money(3 * 800, EUR)
        assert _ledger(platform, "TEA") == [("BER", 3, "return", asked.id)]
        (auth,) = gateway.authorizations()
        assert auth.refunded == 3 * 800
        _check(platform, gateway)


def test_the_events_say_what_a_host_needs_to_tell_the_customer(
    platform: Platform, gateway: SandboxPaymentGateway
) -> None:
    _stocked(platform)
    order_id = _shipped(platform, ("MUG", 2), ("POT", 1))
    asked = platform.checkout.request_return(order_id, lines=[ReturnLine("POT", 1)],
                                             reason="chipped")
    platform.checkout.receive_return(asked.id, warehouse="BER", restock=False)
    platform.checkout.refund_return(asked.id, include_shipping=True)
    other = platform.checkout.request_return(order_id, lines=[ReturnLine("MUG", 1)],
                                             reason="x")
    platform.checkout.reject_return(other.id, reason="worn")
    events: dict[str, dict[str, Any]] = {}
    with platform.order_store.unit_of_work() as uow:
        for found in uow.outbox.pending(limit=1000):
            if found.aggregate_id == order_id:
                events.setdefault(found.type, dict(found.payload))  # the first of each
    requested = events["return.requested"]
    assert requested["return"] == {
        "id": asked.id, "status": "requested", "reason": "chipped",
        "lines": [{"sku": "POT", "quantity": 1}], "warehouse": None, "restock": None,
        "refund": None, "include_shipping": False, "shipping_refund": None,
        "rejection_reason": None}
    assert requested["customer_id"] == "c-1" and requested["order_id"] == order_id
    assert [line["returned_quantity"] for line in requested["lines"]] == [0, 1]
    received = events["return.received"]["return"]
    assert (received["status"], received["warehouse"], received["restock"]) == (
        "received", "BER", False)
    refunded = events["return.refunded"]["return"]
    assert refunded["refund"] == {"amount": 3900, "currency": EUR}
    assert refunded["shipping_refund"] == {"amount": 0, "currency": EUR}  # none was charged
    assert events["order.refunded"]["refunded"] == {"amount": 3900, "currency": EUR}
    rejected = events["return.rejected"]
    assert rejected["return"]["rejection_reason"] == "worn"
    assert [line["returned_quantity"] for line in rejected["lines"]] == [0, 1]


def test_another_step_s_refusal_is_not_the_answer_of_a_return_command(
    platform: Platform, gateway: SandboxPaymentGateway, clock: ManualClock
) -> None:
    _stocked(platform)
    order_id = _shipped(platform, ("MUG", 2))
    asked = platform.checkout.request_return(order_id, lines=[ReturnLine("MUG", 1)], reason="a")
    gateway.outage = {"refund"}
    with pytest.raises(PaymentUnavailable):  # a goodwill refund left in flight
        platform.checkout.refund(order_id, amount=Money(100, EUR), reason="goodwill")
    gateway.outage, gateway.declines = set(), {"refund"}  # back, and refusing it
    clock.advance(timedelta(seconds=11))
    # the receipt finishes the refund first (refused: that refund's outcome), then receives
    received = platform.checkout.receive_return(asked.id, warehouse="BER", restock=True)
    assert received.status is ReturnStatus.RECEIVED
    assert platform.orders.get(order_id).finished
    another = platform.checkout.request_return(order_id, lines=[ReturnLine("MUG", 1)],
                                               reason="b")
    assert another.status is ReturnStatus.REQUESTED
    (auth,) = gateway.authorizations()
    assert auth.refunded == 0
    _check(platform, gateway)


@pytest.mark.parametrize("command", ["ship", "cancel", "refund"])
def test_a_return_step_left_in_flight_is_finished_by_the_next_command_on_its_order(
    platform: Platform, gateway: SandboxPaymentGateway, clock: ManualClock, command: str
) -> None:
    _stocked(platform)
    order_id = _shipped(platform, ("MUG", 2), ("POT", 1), ship=[ShipmentLine("MUG", 2)])
    asked = platform.checkout.request_return(order_id, lines=[ReturnLine("MUG", 1)], reason="a")
    platform.checkout.receive_return(asked.id, warehouse="BER", restock=True)
    gateway.outage = {"refund"}
    with pytest.raises(PaymentUnavailable):
        platform.checkout.refund_return(asked.id)
    gateway.outage = set()
    clock.advance(timedelta(seconds=11))
    if command == "ship":
        done = platform.checkout.ship(order_id, carrier="UPS", tracking_number="P2")
        assert done.status is OrderStatus.SHIPPED
    elif command == "cancel":
        done = platform.checkout.cancel(order_id)
        assert [line.cancelled_quantity for line in done.lines] == [0, 1]
    else:
        done = platform.checkout.refund(order_id, amount=Money(100, EUR), reason="goodwill")
    assert done.finished
    assert platform.orders.get_return(asked.id).refund == Money(1250, EUR)
    _check(platform, gateway)


def test_ids_no_order_or_return_can_have_are_not_found() -> None:
    from commerce_core.orders.model import order_of_return  # noqa: PLC0415

    for hostile in ["ret_\ud800_1", "ret_ord\x00_1", 7, None, "ret_ord_1\n"]:
        with pytest.raises(NotFound):
            order_of_return(hostile)  # type: ignore[arg-type]


def test_hostile_ids_are_not_found_on_every_backend(platform: Platform) -> None:
    for hostile in ["ord_\ud800", "ret_ord_\ud800_1", "ord_\x00"]:
        with pytest.raises(NotFound):
            platform.orders.get(hostile)
        with pytest.raises(NotFound):
            platform.orders.get_return(hostile)
        with pytest.raises(NotFound):
            platform.checkout.ship(hostile, carrier="DHL", tracking_number="P")
        with pytest.raises(NotFound):
            platform.checkout.receive_return(hostile, warehouse="BER", restock=True)

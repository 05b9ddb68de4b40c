"""Shipping in parts and cancelling the rest, on every backend: each parcel commits its own
units once, the first captures the payment whole, what will not ship goes back on sale with
its share of what was paid refunded; a crash anywhere is finished by recover()."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from commerce_core import (
    ConcurrencyConflict,
    DuplicateParcel,
    IdempotencyKeyInUse,
    InvalidInput,
    InvalidTransition,
    Money,
    Order,
    OrderStatus,
    PaymentDeclined,
    PaymentUnavailable,
    Platform,
    ShipmentExceedsOrder,
    ShipmentLine,
    ShippingOption,
    StandardPricing,
    TaxRate,
    Voucher,
    VoucherKind,
)
from commerce_core.orders import SagaStep
from commerce_core.orders.shares import allocate, shares_of, units_share
from commerce_core.pricing import InMemoryPricingRules
from commerce_core.testing import ManualClock, SandboxPaymentGateway, check_invariants
from tests.conftest import order, seed
from tests.helpers import platform_on
from tests.unit.test_recovery import SimulatedCrash, World, world  # noqa: F401 (a fixture)

EUR = "EUR"


def _stocked(platform: Platform) -> None:
    """MUG 3 in Berlin and 3 in Amsterdam (an order of 5 takes 3 from AMS and 2 from BER),
    POT 3 and TEA 50 in Berlin."""
    seed(platform, {"MUG": 3, "POT": 3, "TEA": 50})
    platform.inventory.adjust_stock("MUG", "AMS", delta=3, reason="receipt")


def _levels(platform: Platform, sku: str) -> dict[str, tuple[int, int]]:
    """(on_hand, reserved) per warehouse."""
    return {lv.warehouse: (lv.on_hand, lv.reserved) for lv in platform.inventory.stock(sku).levels}


def _events(platform: Platform, order_id: str) -> list[str]:
    with platform.order_store.unit_of_work() as uow:
        return [e.type for e in uow.outbox.pending(limit=1000) if e.aggregate_id == order_id]


def _check(platform: Platform, gateway: SandboxPaymentGateway) -> None:
    check_invariants(platform.order_store, platform.inventory_store, gateway)


def test_an_order_ships_in_two_parcels_from_two_warehouses(
    platform: Platform, gateway: SandboxPaymentGateway
) -> None:
    _stocked(platform)
    placed = platform.checkout.place_order(order(("MUG", 5), ("TEA", 1)), idempotency_key="k")
    first = platform.checkout.ship(placed.id, carrier="DHL", tracking_number="P1",
                                   lines=[ShipmentLine("MUG", 3)], warehouse="AMS")
    assert first.status is OrderStatus.PARTIALLY_SHIPPED and first.saga_step is SagaStep.DONE
    assert [(line.sku, line.shipped_quantity, line.left) for line in first.lines] == [
        ("MUG", 3, 2), ("TEA", 0, 1)]
    (parcel,) = first.shipments
    assert (parcel.carrier, parcel.tracking_number, parcel.warehouse, parcel.lines) == (
        "DHL", "P1", "AMS", (ShipmentLine("MUG", 3),))
    assert parcel.id.startswith("shp_") and first.shipment == parcel
    payment = platform.orders.payment(first)
    assert payment is not None and payment.captured == placed.total  # the whole of it, once
    assert _levels(platform, "MUG") == {"AMS": (0, 0), "BER": (3, 2)}
    _check(platform, gateway)

    rest = platform.checkout.ship(placed.id, carrier="UPS", tracking_number="P2")
    assert rest.status is OrderStatus.SHIPPED
    assert [(line.shipped_quantity, line.left) for line in rest.lines] == [(5, 0), (1, 0)]
    assert [s.lines for s in rest.shipments] == [
        (ShipmentLine("MUG", 3),), (ShipmentLine("MUG", 2), ShipmentLine("TEA", 1))]
    assert _levels(platform, "MUG") == {"AMS": (0, 0), "BER": (1, 0)}
    assert _levels(platform, "TEA") == {"BER": (49, 0)}
    (auth,) = gateway.authorizations()
    assert (auth.status, auth.captured) == ("captured", placed.total.amount)
    assert [h.status for h in rest.history][-2:] == ["partially_shipped", "shipped"]
    events = _events(platform, placed.id)
    assert events.count("order.partially_shipped") == 1 and events.count("order.shipped") == 1
    assert events.count("payment.captured") == 1
    with pytest.raises(InvalidTransition):  # nothing left
        platform.checkout.ship(placed.id, carrier="UPS", tracking_number="P3")
    _check(platform, gateway)


def test_a_parcel_of_more_than_is_left_is_refused_with_nothing_changed(
    platform: Platform, gateway: SandboxPaymentGateway
) -> None:
    _stocked(platform)
    placed = platform.checkout.place_order(order(("MUG", 5), ("TEA", 1)), idempotency_key="k")
    platform.checkout.ship(placed.id, carrier="DHL", tracking_number="P1",
                           lines=[ShipmentLine("MUG", 2)])
    before = platform.orders.get(placed.id)
    for lines, warehouse, left in [
        ([ShipmentLine("MUG", 4)], None, 3),            # 3 left of 5
        ([ShipmentLine("POT", 1)], None, 0),            # not in the order
        ([ShipmentLine("MUG", 1), ShipmentLine("MUG", 3)], None, 3),  # 4 in all
        ([ShipmentLine("TEA", 1)], "AMS", 0),           # its tea is in Berlin
    ]:
        with pytest.raises(ShipmentExceedsOrder) as refused:
            platform.checkout.ship(placed.id, carrier="DHL", tracking_number="P2",
                                   lines=lines, warehouse=warehouse)
        assert refused.value.left == left and refused.value.warehouse == warehouse
    bad: list[tuple[Any, str | None, str]] = [
        ([], None, "lines"), ([ShipmentLine("MUG", 0)], None, "lines[0].quantity"),
        ([("MUG", 1)], None, "lines[0]"), ([ShipmentLine("bad sku", 1)], None, "lines[0].sku"),
        (None, "a b", "warehouse"),
    ]
    for mistyped, warehouse, path in bad:
        with pytest.raises(InvalidInput) as invalid:
            platform.checkout.ship(placed.id, carrier="DHL", tracking_number="P2",
                                   lines=mistyped, warehouse=warehouse)
        assert path in [e.path for e in invalid.value.errors]
    assert platform.orders.get(placed.id) == before
    _check(platform, gateway)


def test_cancelling_the_rest_releases_it_and_refunds_its_share(
    platform: Platform, gateway: SandboxPaymentGateway
) -> None:
    _stocked(platform)
    placed = platform.checkout.place_order(order(("MUG", 2), ("POT", 1)), idempotency_key="k")
    platform.checkout.ship(placed.id, carrier="DHL", tracking_number="P1",
                           lines=[ShipmentLine("MUG", 2)])
    done = platform.checkout.cancel(placed.id)
    assert done.status is OrderStatus.SHIPPED and done.saga_step is SagaStep.DONE
    assert [(line.shipped_quantity, line.cancelled_quantity) for line in done.lines] == [
        (2, 0), (0, 1)]
    payment = platform.orders.payment(done)
    assert payment is not None
    assert (payment.captured.amount, payment.refunded.amount) == (6400, 3900)
    assert _levels(platform, "POT") == {"BER": (3, 0)}  # back on sale, never shipped
    (auth,) = gateway.authorizations()
    assert (auth.captured, auth.refunded) == (6400, 3900)
    events = _events(platform, placed.id)
    assert events[-2:] == ["order.rest_cancelled", "order.refunded"]
    with pytest.raises(InvalidTransition):  # nothing left to cancel or to ship
        platform.checkout.cancel(placed.id)
    # what was shipped may still be refunded, up to what is left of the capture
    refunded = platform.checkout.refund(placed.id, reason="broken")
    assert refunded.status is OrderStatus.REFUNDED
    _check(platform, gateway)


def place_priced(platform: Platform) -> Order:
    """The shop stocked and priced (standard shipping 4.95, VAT 19 %, voucher TEN for 10 %
    off), and an order of two mugs and a pot placed with TEN: 7443 in all."""
    pricing = StandardPricing(InMemoryPricingRules())
    pricing.put_shipping_option(ShippingOption(code="std", name="Std", price=Money(495, EUR)))
    pricing.put_tax_rate(TaxRate(country="DE", rate_bp=1900))
    pricing.put_voucher(Voucher(code="TEN", kind=VoucherKind.PERCENT, percent_bp=1000))
    platform.checkout.pricing = pricing
    _stocked(platform)
    command = order(("MUG", 2), ("POT", 1))
    command = type(command)(**{**{f: getattr(command, f) for f in (
        "customer_id", "lines", "payment_token", "shipping_address")},
        "shipping_option": "std", "voucher_code": "TEN"})
    placed = platform.checkout.place_order(command, idempotency_key="k")
    # 6400 - 640 + 495 = 6255, VAT 19 %: 1188; total 7443
    assert placed.total == Money(7443, EUR)
    return placed


def test_the_share_of_the_rest_includes_its_discount_and_tax_and_no_shipping(
    tmp_path: Path, backend: str, clock: ManualClock, gateway: SandboxPaymentGateway
) -> None:
    with platform_on(backend, tmp_path, clock, gateway) as platform:
        placed = place_priced(platform)
        # the lines' net: MUG 2250, POT 3510, shipping 495; the tax shared over them:
        # 427.3, 666.6 and 94.0 -> 427, 667 (the largest remainder), 94
        assert shares_of(placed).lines == (2250 + 427, 3510 + 667)
        assert shares_of(placed).charges == 495 + 94
        platform.checkout.ship(placed.id, carrier="DHL", tracking_number="P1",
                               lines=[ShipmentLine("MUG", 2)])
        done = platform.checkout.cancel(placed.id)
        payment = platform.orders.payment(done)
        assert payment is not None and payment.refunded == Money(4177, EUR)
        _check(platform, gateway)


@pytest.mark.parametrize(("amount", "weights", "parts"), [
    (10, [1, 1, 1], [4, 3, 3]), (7, [0, 0], [7, 0]), (100, [3, 5, 2], [30, 50, 20]),
    (1188, [2250, 3510, 495], [427, 667, 94]), (0, [5, 5], [0, 0]), (5, [], []),
])
def test_amounts_are_shared_to_the_cent_by_largest_remainder(
    amount: int, weights: list[int], parts: list[int]
) -> None:
    assert allocate(amount, weights) == parts
    assert sum(parts) == (amount if weights else 0)


def test_units_counted_out_in_any_steps_make_their_lines_share_exactly() -> None:
    for share, quantity in [(1000, 3), (1, 7), (4177, 1), (999_999, 1000)]:
        for steps in ([1] * quantity, [quantity], [quantity - 1, 1] if quantity > 1 else [1]):
            before, total = 0, 0
            for units in steps:
                total += units_share(share, quantity, before, units)
                before += units
            assert total == share
    with pytest.raises(ValueError, match="2 units after 1 of 2"):
        units_share(100, 2, 1, 2)


def test_a_refund_the_provider_cannot_take_now_is_finished_by_cancelling_again(
    platform: Platform, gateway: SandboxPaymentGateway
) -> None:
    _stocked(platform)
    placed = platform.checkout.place_order(order(("MUG", 2), ("POT", 1)), idempotency_key="k")
    platform.checkout.ship(placed.id, carrier="DHL", tracking_number="P1",
                           lines=[ShipmentLine("POT", 1)])
    gateway.outage = {"refund"}
    with pytest.raises(PaymentUnavailable):
        platform.checkout.cancel(placed.id)
    stuck = platform.orders.get(placed.id)
    assert (stuck.status, stuck.saga_step) == (OrderStatus.SHIPPED, SagaStep.CANCELLING_REST)
    assert _levels(platform, "MUG") == {"AMS": (3, 0), "BER": (3, 0)}  # released already
    gateway.outage = set()
    done = platform.checkout.cancel(placed.id)
    assert done.saga_step is SagaStep.DONE
    (auth,) = gateway.authorizations()
    assert auth.refunded == 2500
    _check(platform, gateway)


def test_a_lost_capture_at_the_first_parcel_is_repeated_under_its_key(
    platform: Platform, gateway: SandboxPaymentGateway
) -> None:
    _stocked(platform)
    placed = platform.checkout.place_order(order(("MUG", 2), ("POT", 1)), idempotency_key="k")
    gateway.lose_responses = {"capture"}
    with pytest.raises(PaymentUnavailable):
        platform.checkout.ship(placed.id, carrier="DHL", tracking_number="P1",
                               lines=[ShipmentLine("MUG", 1)])
    gateway.lose_responses = set()
    # another parcel asked for: the one on its way out is finished first, then this one
    shipped = platform.checkout.ship(placed.id, carrier="DHL", tracking_number="P9",
                                     lines=[ShipmentLine("POT", 1)])
    assert [s.tracking_number for s in shipped.shipments] == ["P1", "P9"]
    assert [line.shipped_quantity for line in shipped.lines] == [1, 1]
    (auth,) = gateway.authorizations()
    assert (auth.status, auth.captured) == ("captured", 6400)
    # the first one asked for again (its caller retrying after the 503) ships nothing more
    again = platform.checkout.ship(placed.id, carrier="DHL", tracking_number="P1",
                                   lines=[ShipmentLine("MUG", 1)])
    assert again == shipped
    _check(platform, gateway)


def test_a_parcel_asked_for_again_ships_once_and_its_number_names_one_parcel(
    platform: Platform, gateway: SandboxPaymentGateway
) -> None:
    _stocked(platform)
    placed = platform.checkout.place_order(order(("MUG", 3)), idempotency_key="k")
    first = platform.checkout.ship(placed.id, carrier="DHL", tracking_number="P1",
                                   lines=[ShipmentLine("MUG", 1)])
    assert platform.checkout.ship(placed.id, carrier="DHL", tracking_number="P1",
                                  lines=[ShipmentLine("MUG", 1)]) == first
    with pytest.raises(DuplicateParcel):
        platform.checkout.ship(placed.id, carrier="DHL", tracking_number="P1",
                               lines=[ShipmentLine("MUG", 2)])
    assert platform.orders.get(placed.id) == first
    # another carrier may use the same number
    second = platform.checkout.ship(placed.id, carrier="UPS", tracking_number="P1",
                                    lines=[ShipmentLine("MUG", 1)])
    assert [line.shipped_quantity for line in second.lines] == [2]
    platform.checkout.ship(placed.id, carrier="UPS", tracking_number="P2")
    with pytest.raises(InvalidTransition):  # nothing left: refused, as it always was
        platform.checkout.ship(placed.id, carrier="UPS", tracking_number="P2")
    assert _levels(platform, "MUG")["AMS"][0] + _levels(platform, "MUG")["BER"][0] == 3
    _check(platform, gateway)


def test_a_rest_refused_for_a_dashboard_refund_is_refunded_what_is_left(
    platform: Platform, gateway: SandboxPaymentGateway
) -> None:
    _stocked(platform)
    placed = platform.checkout.place_order(order(("MUG", 1), ("POT", 1)), idempotency_key="k")
    platform.checkout.ship(placed.id, carrier="DHL", tracking_number="P1",
                           lines=[ShipmentLine("MUG", 1)])
    (auth,) = gateway.authorizations()
    gateway.refund_outside(auth.id, Money(2000, EUR))  # 5150 captured, 3150 left to refund
    done = platform.checkout.cancel(placed.id)  # the rest's share is 3900
    payment = platform.orders.payment(done)
    assert payment is not None and payment.refunded == payment.captured == Money(5150, EUR)
    assert done.status is OrderStatus.REFUNDED
    (auth,) = gateway.authorizations()
    assert auth.refunded == 5150
    _check(platform, gateway)


def test_the_events_say_what_shipped_and_what_was_cancelled(
    platform: Platform, gateway: SandboxPaymentGateway
) -> None:
    _stocked(platform)
    placed = platform.checkout.place_order(order(("MUG", 2), ("POT", 1)), idempotency_key="k")
    platform.checkout.ship(placed.id, carrier="DHL", tracking_number="P1",
                           lines=[ShipmentLine("MUG", 1)], warehouse="AMS")
    gateway.declines = {"refund"}
    with pytest.raises(PaymentDeclined):
        platform.checkout.cancel(placed.id)
    with platform.order_store.unit_of_work() as uow:
        events = {e.type: e.payload for e in uow.outbox.pending(limit=100)
                  if e.aggregate_id == placed.id}
    parcel = events["order.partially_shipped"]
    assert (parcel["carrier"], parcel["tracking_number"], parcel["warehouse"]) == (
        "DHL", "P1", "AMS")
    assert parcel["shipped"] == [{"sku": "MUG", "quantity": 1}]
    assert [(line["shipped_quantity"], line["cancelled_quantity"])
            for line in parcel["lines"]] == [(1, 0), (0, 0)]
    rest = events["order.rest_cancelled"]
    assert rest["status"] == "shipped"
    assert rest["cancelled"] == [{"sku": "MUG", "quantity": 1}, {"sku": "POT", "quantity": 1}]
    assert rest["refund_requested"] == {"amount": 1250 + 3900, "currency": EUR}
    assert "order.refunded" not in events  # the provider refused it: nothing was refunded


PART_POINTS = ["shipping", "payment_captured", "stock_committed", "shipped"]


@pytest.mark.parametrize("point", PART_POINTS)
@pytest.mark.parametrize("which", ["first", "second"])
def test_a_crash_while_shipping_a_parcel_is_recovered_and_it_ships_once(
    world: World, point: str, which: str  # noqa: F811 (the fixture)
) -> None:
    platform = world.platform(crash_at=point if which == "first" else None)
    _stocked(platform)
    placed = platform.checkout.place_order(order(("MUG", 5), ("TEA", 1)), idempotency_key="k")

    def first() -> None:
        platform.checkout.ship(placed.id, carrier="DHL", tracking_number="P1",
                               lines=[ShipmentLine("MUG", 3)], warehouse="AMS")

    if which == "first":
        with pytest.raises(SimulatedCrash):
            first()
    else:
        first()
        if point == "payment_captured":
            return  # the second parcel captures nothing
        platform = world.platform(crash_at=point)
        with pytest.raises(SimulatedCrash):
            platform.checkout.ship(placed.id, carrier="UPS", tracking_number="P2",
                                   lines=[ShipmentLine("MUG", 1)])
    restarted = world.restart()
    restarted.checkout.recover(grace=timedelta(0))
    found = restarted.orders.get(placed.id)
    assert found.status is OrderStatus.PARTIALLY_SHIPPED and found.finished
    shipped = [line.shipped_quantity for line in found.lines]
    assert shipped == ([3, 0] if which == "first" else [4, 0])
    mug = restarted.inventory.stock("MUG")
    assert mug.on_hand == 6 - shipped[0]
    (auth,) = world.gateway.authorizations()
    assert (auth.status, auth.captured) == ("captured", placed.total.amount)
    world.check()


@pytest.mark.parametrize("point", ["cancelling_rest", "stock_released", "rest_cancelled"])
def test_a_crash_while_cancelling_the_rest_is_recovered_and_refunds_once(
    world: World, point: str  # noqa: F811 (the fixture)
) -> None:
    platform = world.platform()
    _stocked(platform)
    placed = platform.checkout.place_order(order(("MUG", 2), ("POT", 1)), idempotency_key="k")
    platform.checkout.ship(placed.id, carrier="DHL", tracking_number="P1",
                           lines=[ShipmentLine("MUG", 2)])
    with pytest.raises(SimulatedCrash):
        world.platform(crash_at=point).checkout.cancel(placed.id)
    restarted = world.restart()
    restarted.checkout.recover(grace=timedelta(0))
    found = restarted.orders.get(placed.id)
    assert (found.status, found.saga_step) == (OrderStatus.SHIPPED, SagaStep.DONE)
    (auth,) = world.gateway.authorizations()
    assert auth.refunded == 3900
    assert _levels(restarted, "POT") == {"BER": (3, 0)}
    world.check()


def test_two_admins_shipping_parcels_at_once_never_ship_a_unit_twice(
    backend: str, tmp_path: Path, clock: ManualClock, gateway: SandboxPaymentGateway
) -> None:
    with platform_on(backend, tmp_path, clock, gateway) as platform:
        _stocked(platform)
        placed = platform.checkout.place_order(order(("TEA", 8)), idempotency_key="k")
        outcomes: list[str] = []
        start = threading.Barrier(4)

        def ship(n: int) -> None:
            start.wait()
            try:
                platform.checkout.ship(placed.id, carrier="DHL", tracking_number=f"P{n}",
                                       lines=[ShipmentLine("TEA", 3)])
                outcomes.append("shipped")
            except (ConcurrencyConflict, IdempotencyKeyInUse, InvalidTransition,
                    ShipmentExceedsOrder) as exc:
                outcomes.append(type(exc).__name__)

        threads = [threading.Thread(target=ship, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        platform.checkout.recover(grace=timedelta(0))
        found = platform.orders.get(placed.id)
        parcels = outcomes.count("shipped")
        assert 1 <= parcels <= 2, outcomes
        assert found.lines[0].shipped_quantity == 3 * len(found.shipments)
        assert found.lines[0].shipped_quantity >= 3 * parcels
        assert _levels(platform, "TEA") == {"BER": (50 - found.lines[0].shipped_quantity,
                                                    8 - found.lines[0].shipped_quantity)}
        _check(platform, gateway)


def test_an_admin_whose_parcel_another_admin_finished_first_is_told_it_shipped(
    platform: Platform, gateway: SandboxPaymentGateway
) -> None:
    """Admin A's parcel is captured; before A commits its stock, admin B ships the next
    parcel, which finishes A's first. A's last write then loses the version race: A is told
    its parcel shipped (it did), not asked to try again; nothing is committed twice."""
    _stocked(platform)
    placed = platform.checkout.place_order(order(("TEA", 8)), idempotency_key="k")
    second: list[Order] = []

    def another_admin_ships(step: str, _: object) -> None:
        if step == "payment_captured" and not second:
            platform.checkout.on_step = None
            second.append(platform.checkout.ship(placed.id, carrier="UPS", tracking_number="B1",
                                                 lines=[ShipmentLine("TEA", 2)]))

    platform.checkout.on_step = another_admin_ships
    first = platform.checkout.ship(placed.id, carrier="DHL", tracking_number="A1",
                                   lines=[ShipmentLine("TEA", 3)])
    assert [p.tracking_number for p in second[0].shipments] == ["A1", "B1"]
    assert [p.tracking_number for p in first.shipments] == ["A1", "B1"]
    assert (first.status, first.saga_step) == (OrderStatus.PARTIALLY_SHIPPED, SagaStep.DONE)
    assert first.lines[0].shipped_quantity == 5
    assert _levels(platform, "TEA") == {"BER": (45, 3)}
    assert gateway.authorizations()[0].captured == placed.total.amount
    _check(platform, gateway)

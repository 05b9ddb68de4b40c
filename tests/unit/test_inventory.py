"""The inventory service on every backend: catalogue, adjustments, ledger, queries."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

import pytest

from commerce_core import (
    Conflict,
    IdempotencyKeyReused,
    InvalidInput,
    InvalidTransition,
    Money,
    NotFound,
    OrderStatus,
    Platform,
    StockConflict,
)
from commerce_core.checkout import CheckoutFailed
from commerce_core.inventory import LineRequest, Product, ReservationExpired, ReservationStatus
from commerce_core.testing import ManualClock, SandboxPaymentGateway, check_invariants
from tests.conftest import order, seed
from tests.helpers import Race, platform_on


def test_upsert_reports_whether_it_created(platform: Platform) -> None:
    _, created = platform.inventory.upsert_product("MUG", name="Mug", price=Money(1, "EUR"))
    _, again = platform.inventory.upsert_product("MUG", name="Mug 2", price=Money(2, "EUR"))
    assert (created, again) == (True, False)
    assert platform.inventory.get_product("MUG").name == "Mug 2"
    with pytest.raises(NotFound):
        platform.inventory.get_product("NOPE")


@pytest.mark.parametrize(
    ("kwargs", "path"),
    [({"sku": "bad sku"}, "sku"), ({"name": ""}, "name"), ({"name": "x" * 201}, "name"),
     ({"price": 12.5}, "price")],
)
def test_a_bad_product_is_refused_with_its_field(
    platform: Platform, kwargs: dict[str, object], path: str
) -> None:
    args: dict[str, object] = {"sku": "MUG", "name": "Mug", "price": Money(1, "EUR"), **kwargs}
    with pytest.raises(InvalidInput) as caught:
        platform.inventory.upsert_product(**args)  # type: ignore[arg-type]
    assert [e.path for e in caught.value.errors] == [path]
    assert platform.inventory.list_products(active_only=False).items == []


def test_products_list_by_page_and_hide_inactive(platform: Platform) -> None:
    for sku in ["A1", "B2", "C3", "D4", "E5"]:
        platform.inventory.upsert_product(sku, name=sku, price=Money(1, "EUR"),
                                          active=sku != "C3")
    first = platform.inventory.list_products(limit=2)
    second = platform.inventory.list_products(limit=2, cursor=first.next_cursor)
    assert [p.sku for p in (*first.items, *second.items)] == ["A1", "B2", "D4", "E5"]
    assert second.next_cursor is None
    with pytest.raises(InvalidInput):
        platform.inventory.list_products(limit=0)
    with pytest.raises(InvalidInput):
        platform.inventory.list_products(cursor="!!not a cursor!!")


def test_adjustments_keep_a_ledger_that_sums_to_on_hand(platform: Platform) -> None:
    seed(platform, {"MUG": 10})
    platform.inventory.adjust_stock("MUG", "BER", delta=-3, reason="damaged")
    platform.inventory.adjust_stock("MUG", "AMS", delta=4, reason="receipt")
    moves = platform.inventory.movements("MUG")
    assert [(m.warehouse, m.delta, m.reason) for m in moves] == [
        ("AMS", 4, "receipt"), ("BER", -3, "damaged"), ("BER", 10, "initial stock")]
    stock = platform.inventory.stock("MUG")
    assert (stock.on_hand, stock.available) == (11, 11)


def test_an_adjustment_below_what_is_reserved_is_refused_and_changes_nothing(
    platform: Platform,
) -> None:
    seed(platform, {"MUG": 5})
    platform.inventory.reserve("r1", reference="o1", lines=[LineRequest("MUG", 4)],
                               ttl=timedelta(minutes=5))
    with pytest.raises(StockConflict):
        platform.inventory.adjust_stock("MUG", "BER", delta=-2, reason="count")
    with pytest.raises(StockConflict):
        platform.inventory.adjust_stock("MUG", "AMS", delta=-1, reason="count")
    stock = platform.inventory.stock("MUG")
    assert (stock.on_hand, stock.reserved) == (5, 4)
    assert len(platform.inventory.movements("MUG")) == 1


@pytest.mark.parametrize(
    ("sku", "warehouse", "delta", "reason", "error"),
    [("NOPE", "BER", 1, "x", NotFound), ("MUG", "XXX", 1, "x", NotFound),
     ("MUG", "BER", 0, "x", InvalidInput), ("MUG", "BER", 1, "", InvalidInput),
     ("MUG", "BER", 1.5, "x", InvalidInput)],
)
def test_bad_adjustments_raise_typed_errors(
    platform: Platform, sku: str, warehouse: str, delta: int, reason: str,
    error: type[Exception],
) -> None:
    seed(platform, {"MUG": 5})
    with pytest.raises(error):
        platform.inventory.adjust_stock(sku, warehouse, delta=delta, reason=reason)
    assert platform.inventory.stock("MUG").on_hand == 5


def test_low_stock_lists_skus_at_or_below_the_threshold(platform: Platform) -> None:
    seed(platform, {"MUG": 2, "POT": 3, "TEA": 40})
    assert list(platform.inventory.low_stock(3)) == [("MUG", 2), ("POT", 3)]


def test_a_reservation_is_idempotent_and_release_gives_stock_back(platform: Platform) -> None:
    seed(platform, {"MUG": 5})
    lines = [LineRequest("MUG", 2)]
    first = platform.inventory.reserve("r1", reference="o1", lines=lines,
                                       ttl=timedelta(minutes=5))
    again = platform.inventory.reserve("r1", reference="o1", lines=lines,
                                       ttl=timedelta(minutes=5))
    assert first == again and platform.inventory.availability(["MUG"]) == {"MUG": 3}
    released = platform.inventory.release("r1")
    assert released is not None and released.status is ReservationStatus.RELEASED
    assert platform.inventory.release("r1") == released  # idempotent
    assert platform.inventory.release("never") is None
    assert platform.inventory.availability(["MUG", "POT"]) == {"MUG": 5, "POT": 0}
    with pytest.raises(ReservationExpired):
        platform.inventory.reserve("r1", reference="o1", lines=lines, ttl=timedelta(minutes=5))


def _levels(platform: Platform, sku: str) -> dict[str, tuple[int, int]]:
    """(on_hand, reserved) per warehouse."""
    return {lv.warehouse: (lv.on_hand, lv.reserved) for lv in platform.inventory.stock(sku).levels}


def test_a_held_reservation_ships_in_parts_once_each_and_releases_only_the_rest(
    platform: Platform,
) -> None:
    seed(platform, {"MUG": 3, "TEA": 10})
    platform.inventory.adjust_stock("MUG", "AMS", delta=3, reason="receipt")
    reservation = platform.inventory.reserve(
        "r1", reference="o1", lines=[LineRequest("MUG", 5), LineRequest("TEA", 4)],
        ttl=timedelta(minutes=5))
    assert sorted((line.warehouse, line.quantity) for line in reservation.lines
                  if line.sku == "MUG") == [("AMS", 3), ("BER", 2)]
    with pytest.raises(InvalidTransition):  # not held yet: its order is not confirmed
        platform.inventory.commit_part("r1", shipment="shp-1", lines=[LineRequest("MUG", 1)])
    platform.inventory.hold("r1")
    first = platform.inventory.commit_part("r1", shipment="shp-1", warehouse="AMS",
                                           lines=[LineRequest("MUG", 2)])
    assert first.status is ReservationStatus.HELD
    assert _levels(platform, "MUG") == {"AMS": (1, 1), "BER": (3, 2)}
    assert platform.inventory.commit_part("r1", shipment="shp-1", warehouse="AMS", lines=[
        LineRequest("MUG", 2)]) == first  # the same parcel: once
    assert _levels(platform, "MUG") == {"AMS": (1, 1), "BER": (3, 2)}
    # more than is left (of a SKU, or in a warehouse) changes nothing
    for lines, warehouse in [([LineRequest("MUG", 4)], None), ([LineRequest("MUG", 2)], "AMS"),
                             ([LineRequest("POT", 1)], None)]:
        with pytest.raises(InvalidInput) as refused:
            platform.inventory.commit_part("r1", shipment="shp-2", lines=lines,
                                           warehouse=warehouse)
        assert [e.path for e in refused.value.errors] == ["lines"]
    assert platform.inventory.get_reservation("r1") == first
    second = platform.inventory.commit_part("r1", shipment="shp-2", warehouse="BER",
                                            lines=[LineRequest("MUG", 1), LineRequest("TEA", 1)])
    assert _levels(platform, "MUG") == {"AMS": (1, 1), "BER": (2, 1)}
    assert [(m.delta, m.reason, m.reference) for m in platform.inventory.movements("MUG")
            if m.reason == "shipment"] == [(-1, "shipment", "o1"), (-2, "shipment", "o1")]
    # the rest is released: only what did not ship goes back on sale
    released = platform.inventory.release("r1")
    assert released is not None and released.status is ReservationStatus.RELEASED
    assert released.lines == second.lines and released.outstanding == ()
    assert _levels(platform, "MUG") == {"AMS": (1, 0), "BER": (2, 0)}
    assert _levels(platform, "TEA") == {"BER": (9, 0)}
    with pytest.raises(ReservationExpired):
        platform.inventory.commit_part("r1", shipment="shp-3", lines=[LineRequest("MUG", 1)])
    check_invariants(platform.order_store, platform.inventory_store)


def test_place_hold_answers_as_hold_does(platform: Platform, clock: ManualClock) -> None:
    """The checkout's hold (one guarded write where the store can): held, held again, or
    the same errors as `hold`, with nothing changed."""
    seed(platform, {"MUG": 5})
    for rid in ("r1", "r2"):
        platform.inventory.reserve(rid, reference=f"o-{rid}", lines=[LineRequest("MUG", 2)],
                                   ttl=timedelta(minutes=5))
    assert platform.inventory.place_hold("r1") is None
    held = platform.inventory.get_reservation("r1")
    assert held.status is ReservationStatus.HELD and held.expires_at is None
    platform.inventory.place_hold("r1")  # held already: fine, nothing written
    assert platform.inventory.get_reservation("r1") == held
    with pytest.raises(NotFound):
        platform.inventory.place_hold("r-missing")
    clock.advance(timedelta(minutes=6))
    assert platform.inventory.expire_reservations() == 1  # r2; r1 is held
    with pytest.raises(ReservationExpired):
        platform.inventory.place_hold("r2")
    assert platform.inventory.get_reservation("r2").status is ReservationStatus.EXPIRED
    assert _levels(platform, "MUG") == {"BER": (5, 2)}


def test_what_is_left_of_a_reservation_shipped_in_parts_ships_whole(platform: Platform) -> None:
    seed(platform, {"MUG": 5})
    platform.inventory.reserve("r1", reference="o1", lines=[LineRequest("MUG", 5)],
                               ttl=timedelta(minutes=5))
    platform.inventory.hold("r1")
    platform.inventory.commit_part("r1", shipment="shp-1", lines=[LineRequest("MUG", 2)])
    committed = platform.inventory.commit("r1")
    assert committed.status is ReservationStatus.COMMITTED
    assert _levels(platform, "MUG") == {"BER": (0, 0)}
    assert platform.inventory.commit("r1") == committed
    # shipping the last units in a part commits the reservation too
    platform.inventory.adjust_stock("MUG", "BER", delta=2, reason="receipt")
    platform.inventory.reserve("r2", reference="o2", lines=[LineRequest("MUG", 2)],
                               ttl=timedelta(minutes=5))
    platform.inventory.hold("r2")
    last = platform.inventory.commit_part("r2", shipment="shp-9", lines=[LineRequest("MUG", 2)])
    assert last.status is ReservationStatus.COMMITTED and last.outstanding == ()
    assert _levels(platform, "MUG") == {"BER": (0, 0)}
    check_invariants(platform.order_store, platform.inventory_store)


def test_a_parcel_id_is_its_reservations_and_never_an_adjustments(platform: Platform) -> None:
    seed(platform, {"MUG": 5})
    for rid in ("r1", "r2"):
        platform.inventory.reserve(rid, reference=f"o-{rid}", lines=[LineRequest("MUG", 2)],
                                   ttl=timedelta(minutes=5))
        platform.inventory.hold(rid)
    # the same parcel id in two reservations: two parcels
    for rid in ("r1", "r2"):
        shipped = platform.inventory.commit_part(rid, shipment="box-1",
                                                 lines=[LineRequest("MUG", 1)])
        assert [line.committed for line in shipped.lines] == [1]
    assert _levels(platform, "MUG") == {"BER": (3, 2)}
    # an adjustment that took the key a parcel would use is not taken for that parcel
    platform.inventory.adjust_stock("MUG", "BER", delta=1, reason="count",
                                    idempotency_key="r1/box-2#0")
    with pytest.raises(IdempotencyKeyReused):
        platform.inventory.commit_part("r1", shipment="box-2", lines=[LineRequest("MUG", 1)])
    assert _levels(platform, "MUG") == {"BER": (4, 2)}


@pytest.mark.parametrize(("kwargs", "path"), [
    ({"shipment": "bad id"}, "shipment"), ({"lines": []}, "lines"), ({"lines": "MUG"}, "lines"),
    ({"lines": [("MUG", 1)]}, "lines[0]"), ({"lines": [LineRequest("MUG", 0)]},
                                            "lines[0].quantity"),
    ({"warehouse": "a b"}, "warehouse"),
])
def test_a_mistyped_part_shipment_is_a_typed_error(
    platform: Platform, kwargs: dict[str, object], path: str
) -> None:
    seed(platform, {"MUG": 5})
    platform.inventory.reserve("r1", reference="o1", lines=[LineRequest("MUG", 2)],
                               ttl=timedelta(minutes=5))
    platform.inventory.hold("r1")
    args: dict[str, object] = {"shipment": "shp-1", "lines": [LineRequest("MUG", 1)], **kwargs}
    with pytest.raises(InvalidInput) as refused:
        platform.inventory.commit_part("r1", **args)  # type: ignore[arg-type]
    assert path in [e.path for e in refused.value.errors]
    assert _levels(platform, "MUG") == {"BER": (5, 2)}


@pytest.mark.parametrize(
    ("kwargs", "path"),
    [({"lines": None}, "lines"), ({"lines": [("MUG", 1)]}, "lines[0]"),
     ({"lines": [LineRequest("MUG", 0)]}, "lines[0].quantity"), ({"ttl": 60}, "ttl"),
     ({"reference": ""}, "reference")],
)
def test_a_mistyped_reservation_is_a_typed_error(
    platform: Platform, kwargs: dict[str, object], path: str
) -> None:
    seed(platform, {"MUG": 5})
    args: dict[str, object] = {"reference": "o1", "lines": [LineRequest("MUG", 1)],
                               "ttl": timedelta(minutes=5), **kwargs}
    with pytest.raises(InvalidInput) as caught:
        platform.inventory.reserve("r1", **args)  # type: ignore[arg-type]
    assert path in [e.path for e in caught.value.errors]
    assert platform.inventory.availability(["MUG"]) == {"MUG": 5}


def test_products_are_imported_in_batches_and_again_as_an_upsert(platform: Platform) -> None:
    platform.inventory.upsert_product("P-0003", name="Old name", price=Money(1, "EUR"))
    products = [Product(f"P-{n:04d}", f"Product {n}", Money(100 + n, "EUR")) for n in range(25)]
    progress: list[int] = []
    report = platform.inventory.import_products(products, batch_size=10,
                                                on_progress=progress.append)
    assert (report.created, report.updated, report.unchanged) == (24, 1, 0)
    assert progress == [10, 10, 5]
    assert platform.inventory.get_product("P-0003").name == "Product 3"
    listed = platform.inventory.list_products(limit=100).items
    assert [p.sku for p in listed] == [p.sku for p in products]
    changed = [*products[:24], Product("P-0024", "Renamed", Money(1, "EUR"), active=False)]
    again = platform.inventory.import_products(changed)
    assert (again.created, again.updated, again.unchanged) == (0, 1, 24)
    assert platform.inventory.get_product("P-0024") == changed[-1]


def test_an_import_with_a_bad_product_writes_nothing_and_names_every_bad_one(
    platform: Platform,
) -> None:
    products: list[object] = [
        Product("GOOD-1", "Fine", Money(1, "EUR")),
        Product("bad sku", "Spaces", Money(1, "EUR")),
        Product("GOOD-2", "", Money(1, "EUR")),
        "not a product",
        Product("GOOD-1", "Twice", Money(1, "EUR")),
    ]
    with pytest.raises(InvalidInput) as caught:
        platform.inventory.import_products(products)  # type: ignore[arg-type]
    assert [e.path for e in caught.value.errors] == [
        "products[1].sku", "products[2].name", "products[3]", "products[4].sku"]
    assert platform.inventory.list_products(active_only=False).items == []
    with pytest.raises(InvalidInput) as batch:
        platform.inventory.import_products([], batch_size=0)
    assert [e.path for e in batch.value.errors] == ["batch_size"]


def test_concurrent_first_receipts_of_a_sku_in_a_warehouse_all_count(
    platform: Platform,
) -> None:
    """No stock row exists yet, so there is nothing to lock: the first receipts race to
    create it. Every one of them must land, once."""
    seed(platform, {})
    errors: list[BaseException] = []
    start = threading.Barrier(30, timeout=30)

    def receive(n: int) -> None:
        try:
            start.wait()
            platform.inventory.adjust_stock("POT", "AMS", delta=n + 1, reason=f"receipt {n}")
        except BaseException as exc:  # noqa: BLE001 - asserted on below
            errors.append(exc)

    threads = [threading.Thread(target=receive, args=(n,)) for n in range(30)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    (ams,) = [lv for lv in platform.inventory.stock("POT").levels if lv.warehouse == "AMS"]
    assert ams.on_hand == sum(range(1, 31)) == 465
    assert len([m for m in platform.inventory.movements("POT") if m.warehouse == "AMS"]) == 30
    check_invariants(platform.order_store, platform.inventory_store)


def test_an_adjustment_under_a_key_is_applied_once(platform: Platform) -> None:
    seed(platform, {"MUG": 10})
    first = platform.inventory.adjust_stock("MUG", "BER", delta=5, reason="receipt",
                                            idempotency_key="delivery-7")
    assert first.on_hand == 15
    platform.inventory.adjust_stock("MUG", "BER", delta=-1, reason="broken")
    again = platform.inventory.adjust_stock("MUG", "BER", delta=5, reason="receipt",
                                            idempotency_key="delivery-7")
    assert again.on_hand == 14  # the level as it now stands: nothing added twice
    assert platform.inventory.stock("MUG").on_hand == 14
    with pytest.raises(IdempotencyKeyReused):
        platform.inventory.adjust_stock("MUG", "BER", delta=6, reason="receipt",
                                        idempotency_key="delivery-7")
    with pytest.raises(IdempotencyKeyReused):
        platform.inventory.adjust_stock("MUG", "AMS", delta=5, reason="receipt",
                                        idempotency_key="delivery-7")
    assert platform.inventory.adjust_stock(  # keys compare exactly
        "MUG", "BER", delta=5, reason="receipt", idempotency_key="DELIVERY-7").on_hand == 19
    with pytest.raises(InvalidInput):
        platform.inventory.adjust_stock("MUG", "BER", delta=5, reason="receipt",
                                        idempotency_key="bad\tkey")
    check_invariants(platform.order_store, platform.inventory_store)


def test_concurrent_repeats_of_one_keyed_adjustment_apply_it_once(platform: Platform) -> None:
    seed(platform, {"MUG": 10})
    start = threading.Barrier(8, timeout=30)
    levels: list[int] = []
    errors: list[BaseException] = []

    def adjust() -> None:
        try:
            start.wait()
            levels.append(platform.inventory.adjust_stock(
                "MUG", "BER", delta=3, reason="receipt", idempotency_key="one").on_hand)
        except BaseException as exc:  # noqa: BLE001 - asserted on below
            errors.append(exc)

    threads = [threading.Thread(target=adjust) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == [] and levels == [13] * 8
    assert platform.inventory.stock("MUG").on_hand == 13


def test_a_hold_that_loses_the_race_with_expiry_fails_the_checkout_cleanly(
    backend: str, tmp_path: Path, clock: ManualClock
) -> None:
    """The checkout was slower than its reservation's lifetime, and the expiry sweep took
    the reservation between the hold's read and its write: the order fails with a reason
    the client understands, the hold at the provider is voided, and a retry of the same key
    answers the same."""
    race = Race()
    gateway = SandboxPaymentGateway()
    with platform_on(backend, tmp_path, clock, gateway, inventory=race.wrap,
                     reservation_ttl=timedelta(seconds=30)) as platform:
        seed(platform)

        def slow(step: str, _: object) -> None:
            if step == "payment_authorized":  # the provider took its time
                clock.advance(timedelta(seconds=31))
                race.arm(platform.inventory.expire_reservations)

        platform.checkout.on_step = slow
        with pytest.raises(ReservationExpired) as failed:
            platform.checkout.place_order(order(("MUG", 2)), idempotency_key="k1")
        assert race.ran == 1
        kept = platform.orders.get(str(failed.value.order_id))
        assert (kept.status, kept.finished) == (OrderStatus.FAILED, True)
        assert [a.status for a in gateway.authorizations()] == ["voided"]
        assert platform.inventory.stock("MUG").reserved == 0
        platform.checkout.on_step = None
        with pytest.raises(CheckoutFailed) as replayed:  # the same answer, not "in use"
            platform.checkout.place_order(order(("MUG", 2)), idempotency_key="k1")
        assert (replayed.value.code, replayed.value.order_id) == (
            "reservation-expired", kept.id)
        assert isinstance(replayed.value, Conflict)  # 409 over HTTP, as the first answer
        check_invariants(platform.order_store, platform.inventory_store, gateway)


@pytest.mark.parametrize("how", ["hold", "place_hold"])
def test_an_expiry_sweep_that_loses_the_race_with_a_hold_skips_that_reservation(
    backend: str, tmp_path: Path, clock: ManualClock, how: str
) -> None:
    race = Race()
    with platform_on(backend, tmp_path, clock, SandboxPaymentGateway(),
                     inventory=race.wrap) as platform:
        seed(platform)
        platform.inventory.reserve("r-1", reference="o-1", ttl=timedelta(seconds=30),
                                   lines=[LineRequest("MUG", 2)])
        platform.inventory.reserve("r-2", reference="o-2", ttl=timedelta(seconds=30),
                                   lines=[LineRequest("TEA", 1)])
        clock.advance(timedelta(seconds=31))
        # its checkout got there first
        race.arm(lambda: getattr(platform.inventory, how)("r-1"))
        assert platform.inventory.expire_reservations() == 1  # r-2 only, and no error
        assert race.ran == 1
        assert platform.inventory.get_reservation("r-1").status is ReservationStatus.HELD
        assert platform.inventory.get_reservation("r-2").status is ReservationStatus.EXPIRED
        assert platform.inventory.stock("MUG").reserved == 2


def test_what_cannot_be_a_sku_or_a_customer_id_is_never_asked_of_a_store(
    platform: Platform,
) -> None:
    """A NUL reaches PostgreSQL as a parameter it cannot store (a database error, 503):
    the services answer for it first, on every backend."""
    seed(platform)
    for sku in ("MUG\x00", "\x00", "a\nb"):
        with pytest.raises(NotFound):
            platform.inventory.get_product(sku)
        with pytest.raises(NotFound):
            platform.inventory.stock(sku)
        with pytest.raises(NotFound):
            platform.inventory.movements(sku)
    with pytest.raises(InvalidInput, match="customer id"):
        platform.orders.list(customer_id="alice\x00")
    assert platform.inventory.get_product("MUG").sku == "MUG"

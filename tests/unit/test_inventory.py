"""The inventory service on every backend: catalogue, adjustments, ledger, queries."""

from __future__ import annotations

from datetime import timedelta

import pytest

from commerce_core import InvalidInput, Money, NotFound, Platform, StockConflict
from commerce_core.inventory import LineRequest, Product, ReservationExpired, ReservationStatus
from tests.conftest import seed


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

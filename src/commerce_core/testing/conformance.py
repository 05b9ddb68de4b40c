"""Port conformance suites: subclass one in a pytest module and provide its fixture.

```python
import pytest
from commerce_core.testing.conformance import InventoryStoreConformance

@pytest.fixture
def inventory_store():
    store = MyInventoryStore(...)   # a fresh, empty store
    yield store
    store.close()

class TestMyInventoryStore(InventoryStoreConformance):
    pass
```

Every adapter in this repository passes these suites; a third-party adapter runs the same
ones against itself. They only use the ports, so they say what any store must do. (They are
plain test classes and import no pytest, so the core stays free of it.)
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs

from commerce_core.errors import (
    ConcurrencyConflict,
    Conflict,
    IdempotencyKeyReused,
    InsufficientStock,
    PaymentDeclined,
    VoucherNotApplicable,
)
from commerce_core.events import (
    Backlog,
    DomainEvent,
    EventPublishFailed,
    InProcessPublisher,
    OutboxRelay,
    OutboxStore,
    outbox_backlog,
)
from commerce_core.inventory.model import (
    LineRequest,
    Product,
    Reservation,
    ReservationLine,
    ReservationStatus,
    StockLevel,
    StockMovement,
    Warehouse,
)
from commerce_core.inventory.ports import InventoryStore
from commerce_core.inventory.services import InventoryService
from commerce_core.money import Money
from commerce_core.orders.model import (
    Address,
    Adjustment,
    AdjustmentKind,
    IdempotencyRecord,
    Order,
    OrderLine,
    OrderStatus,
    Return,
    ReturnLine,
    ReturnStatus,
    SagaStep,
    Shipment,
    ShipmentLine,
    Tax,
)
from commerce_core.orders.ports import OrderReports, OrderStore, SummaryRow
from commerce_core.payments.model import Payment, ProviderRefund
from commerce_core.payments.ports import ALREADY_CAPTURED, PaymentGateway, RefundLookup
from commerce_core.pricing.standard import (
    PricingRules,
    ShippingOption,
    TaxRate,
    Voucher,
    VoucherKind,
)
from commerce_core.webhooks.model import Delivery, DeliveryStatus, WebhookEndpoint
from commerce_core.webhooks.ports import WebhookStore

__all__ = [
    "InventoryStoreConformance",
    "OrderReportsConformance",
    "OrderStoreConformance",
    "OutboxConformance",
    "PaymentGatewayConformance",
    "PricingRulesConformance",
    "WebhookStoreConformance",
]

T0 = datetime(2026, 1, 2, 3, 4, 5, 123000, tzinfo=UTC)


@contextmanager
def _raises(kind: type[BaseException], what: str = "") -> Iterator[None]:
    """The block must raise ``kind``: anything else, or nothing, fails the test (an
    `AssertionError` saying what was done and what came instead)."""
    doing = f"{what}: " if what else ""
    try:
        yield
    except kind:
        return
    except NotImplementedError:  # a method not written yet: say so as it is
        raise
    except Exception as exc:  # the wrong error is a failed check too, said so
        raise AssertionError(f"{doing}expected {kind.__name__}, got {type(exc).__name__}: "
                             f"{exc}") from exc
    raise AssertionError(f"{doing}expected {kind.__name__}, nothing was raised")


@contextmanager
def _succeeds(what: str) -> Iterator[None]:
    """The block must raise nothing: an error fails the test, saying what was done."""
    try:
        yield
    except NotImplementedError:  # a method not written yet: say so as it is
        raise
    except Exception as exc:  # any error is a failed check, said so
        raise AssertionError(f"{what} raised {type(exc).__name__}: {exc}") from exc


#: how long a racing check waits for its threads before it fails (a store that deadlocks or
#: a claimer that never runs dry must fail the check, not hang the run)
_RACE_TIMEOUT = 120.0


def _race(target: Callable[[int], None], threads: int = 4) -> None:
    """Run ``target(n)`` on ``threads`` threads at once and wait for them, at most
    `_RACE_TIMEOUT` seconds; the first error a thread raised is raised here (a thread's
    error would otherwise be only a warning, and the check fail on a count)."""
    errors: list[BaseException] = []
    start = threading.Barrier(threads, timeout=_RACE_TIMEOUT)

    def run(n: int) -> None:
        try:
            start.wait()
            target(n)
        except BaseException as exc:  # noqa: BLE001 - handed to the test's own thread
            errors.append(exc)

    workers = [threading.Thread(target=run, args=(n,), daemon=True) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=_RACE_TIMEOUT)
    stuck = sum(worker.is_alive() for worker in workers)
    if errors:
        raise errors[0]
    if stuck:
        raise AssertionError(f"{stuck} of {threads} racing threads still ran after "
                             f"{_RACE_TIMEOUT:.0f} s (a lock never released, or a loop that "
                             "never ends)")


@contextmanager
def _voucher_refused(reason: str) -> Iterator[None]:
    try:
        yield
    except VoucherNotApplicable as exc:
        if exc.reason != reason:
            raise AssertionError(f"refused as {exc.reason!r}, not {reason!r}") from exc
        return
    raise AssertionError(f"expected VoucherNotApplicable ({reason})")


def _eur(amount: int) -> Money:
    return Money(amount, "EUR")


class InventoryStoreConformance:
    """What every `InventoryStore` must do.

    Needs a fixture ``inventory_store``: a fresh, empty store.
    """

    def _seed(self, store: InventoryStore) -> None:
        with store.unit_of_work() as uow:
            uow.products.add(Product("SKU-1", "Mug", _eur(1999)))
            uow.products.add(Product("SKU-2", "Cup", _eur(999), active=False))
            uow.products.add(Product("SKU-3", "Pot", _eur(4999)))
            uow.warehouses.add(Warehouse("BER", "Berlin"))
            uow.warehouses.add(Warehouse("AMS", "Amsterdam"))
            uow.commit()

    def test_a_product_round_trips(self, inventory_store: InventoryStore) -> None:
        self._seed(inventory_store)
        with inventory_store.unit_of_work() as uow:
            assert uow.products.get("SKU-1") == Product("SKU-1", "Mug", _eur(1999))
            assert uow.products.get("NOPE") is None
            assert set(uow.products.get_many(["SKU-1", "SKU-2", "NOPE"])) == {"SKU-1", "SKU-2"}

    def test_adding_a_product_twice_is_a_conflict(self, inventory_store: InventoryStore) -> None:
        self._seed(inventory_store)
        with inventory_store.unit_of_work() as uow, _raises(Conflict):
            uow.products.add(Product("SKU-1", "Other", _eur(1)))

    def test_products_added_in_bulk_round_trip_and_a_taken_sku_adds_none(
        self, inventory_store: InventoryStore
    ) -> None:
        self._seed(inventory_store)
        bulk = [Product(f"BULK-{n:03d}", f"Item {n}", _eur(100 + n), active=n % 2 == 0)
                for n in range(250)]
        with inventory_store.unit_of_work() as uow:
            uow.products.add_many(bulk)
            uow.commit()
        with inventory_store.unit_of_work() as uow:
            assert uow.products.get_many([p.sku for p in bulk]) == {p.sku: p for p in bulk}
        with inventory_store.unit_of_work() as uow, _raises(Conflict):
            uow.products.add_many([Product("NEW-1", "New", _eur(1)),
                                   Product("SKU-1", "Taken", _eur(1))])
            uow.commit()
        with inventory_store.unit_of_work() as uow:
            assert uow.products.get("NEW-1") is None
            assert uow.products.get("SKU-1") == Product("SKU-1", "Mug", _eur(1999))

    def test_products_update_and_list_in_sku_order_by_page(
        self, inventory_store: InventoryStore
    ) -> None:
        self._seed(inventory_store)
        with inventory_store.unit_of_work() as uow:
            uow.products.update(Product("SKU-1", "Big mug", Money(2500, "USD"), active=True))
            uow.commit()
        with inventory_store.unit_of_work() as uow:
            assert uow.products.get("SKU-1") == Product("SKU-1", "Big mug", Money(2500, "USD"))
            everything = [p.sku for p in uow.products.list(active_only=False, after=None,
                                                           limit=10)]
            active = [p.sku for p in uow.products.list(active_only=True, after=None, limit=10)]
            after = [p.sku for p in uow.products.list(active_only=False, after="SKU-1",
                                                      limit=1)]
        assert everything == ["SKU-1", "SKU-2", "SKU-3"]
        assert active == ["SKU-1", "SKU-3"]
        assert after == ["SKU-2"]

    def test_warehouses_round_trip_in_code_order(self, inventory_store: InventoryStore) -> None:
        self._seed(inventory_store)
        with inventory_store.unit_of_work() as uow:
            uow.warehouses.update(Warehouse("BER", "Berlin-Mitte"))
            uow.commit()
        with inventory_store.unit_of_work() as uow:
            assert uow.warehouses.get("BER") == Warehouse("BER", "Berlin-Mitte")
            assert [w.code for w in uow.warehouses.list()] == ["AMS", "BER"]
            assert uow.warehouses.get("XXX") is None

    def test_nothing_is_kept_unless_committed(self, inventory_store: InventoryStore) -> None:
        with inventory_store.unit_of_work() as uow:
            uow.products.add(Product("SKU-9", "Ghost", _eur(1)))
        try:
            with inventory_store.unit_of_work() as uow:
                uow.warehouses.add(Warehouse("GHO", "Ghost town"))
                raise RuntimeError("boom")
        except RuntimeError:
            pass
        with inventory_store.unit_of_work() as uow:
            assert uow.products.get("SKU-9") is None
            assert uow.warehouses.get("GHO") is None

    def test_stock_levels_are_versioned(self, inventory_store: InventoryStore) -> None:
        self._seed(inventory_store)
        with inventory_store.unit_of_work() as uow:
            uow.stock.add(StockLevel("SKU-1", "BER", on_hand=10))
            uow.stock.add(StockLevel("SKU-1", "AMS", on_hand=5))
            uow.commit()
        with inventory_store.unit_of_work() as uow:
            levels = uow.stock.lock(["SKU-1"])
            assert [(lv.warehouse, lv.on_hand, lv.reserved) for lv in levels] == [
                ("AMS", 5, 0), ("BER", 10, 0)]
            saved = uow.stock.update(levels[1].with_reserved(3))
            assert saved.version == levels[1].version + 1
            uow.commit()
        with inventory_store.unit_of_work() as uow:
            (ber,) = [lv for lv in uow.stock.levels(["SKU-1"]) if lv.warehouse == "BER"]
            assert (ber.on_hand, ber.reserved, ber.available) == (10, 3, 7)
            with _raises(ConcurrencyConflict):
                uow.stock.update(levels[1].with_reserved(1))  # stale version

    def test_stock_levels_update_together_or_not_at_all(
        self, inventory_store: InventoryStore
    ) -> None:
        self._seed(inventory_store)
        with inventory_store.unit_of_work() as uow:
            uow.stock.add(StockLevel("SKU-1", "BER", on_hand=10))
            uow.stock.add(StockLevel("SKU-1", "AMS", on_hand=5))
            uow.stock.add(StockLevel("SKU-3", "BER", on_hand=7))
            uow.commit()
        with inventory_store.unit_of_work() as uow:
            levels = uow.stock.lock(["SKU-1", "SKU-3"])
            saved = uow.stock.update_many([lv.with_reserved(2) for lv in levels])
            assert [(lv.sku, lv.warehouse, lv.reserved, lv.version) for lv in saved] == [
                (lv.sku, lv.warehouse, 2, lv.version + 1) for lv in levels]
            uow.commit()
        # one of them stale: none may be written
        with inventory_store.unit_of_work() as uow, _raises(ConcurrencyConflict):
            uow.stock.update_many([saved[0].with_reserved(1), levels[1].with_reserved(1)])
        with inventory_store.unit_of_work() as uow:
            assert [lv.reserved for lv in uow.stock.levels(["SKU-1", "SKU-3"])] == [2, 2, 2]

    def test_low_stock_sums_active_products_over_warehouses(
        self, inventory_store: InventoryStore
    ) -> None:
        self._seed(inventory_store)
        with inventory_store.unit_of_work() as uow:
            uow.stock.add(StockLevel("SKU-1", "BER", on_hand=2))
            uow.stock.add(StockLevel("SKU-1", "AMS", on_hand=2, reserved=1))
            uow.stock.add(StockLevel("SKU-3", "BER", on_hand=50))
            uow.commit()
        with inventory_store.unit_of_work() as uow:
            assert list(uow.stock.low(3, limit=10)) == [("SKU-1", 3)]
            assert list(uow.stock.low(100, limit=10)) == [("SKU-1", 3), ("SKU-3", 50)]

    def test_a_reservation_round_trips_and_expires(self, inventory_store: InventoryStore) -> None:
        self._seed(inventory_store)
        reservation = Reservation(
            "res-1", "ord-1",
            (ReservationLine("SKU-1", "BER", 2), ReservationLine("SKU-1", "AMS", 1)),
            ReservationStatus.ACTIVE, T0, T0 + timedelta(minutes=15),
        )
        with inventory_store.unit_of_work() as uow:
            uow.reservations.add(reservation)
            uow.commit()
        with inventory_store.unit_of_work() as uow:
            assert uow.reservations.get("res-1") == reservation
            assert list(uow.reservations.expired(T0 + timedelta(minutes=14), limit=10)) == []
            assert list(uow.reservations.expired(T0 + timedelta(minutes=15), limit=10)) == [
                "res-1"]
            held = uow.reservations.update(reservation.hold())
            uow.commit()
        with inventory_store.unit_of_work() as uow:
            assert uow.reservations.get("res-1") == held
            assert held.expires_at is None and held.version == 1
            assert list(uow.reservations.expired(T0 + timedelta(days=1), limit=10)) == []
            with _raises(ConcurrencyConflict):
                uow.reservations.update(reservation.release())

    def test_mark_held_holds_an_active_reservation_and_nothing_else(
        self, inventory_store: InventoryStore
    ) -> None:
        """``mark_held`` (optional): one guarded write, active → held; false, nothing
        written, for a missing, held or ended reservation. A store without it is read and
        updated instead, and this test does not apply."""
        self._seed(inventory_store)
        with inventory_store.unit_of_work() as uow:
            if not hasattr(uow.reservations, "mark_held"):
                return
        lines = (ReservationLine("SKU-1", "BER", 2),)
        active = Reservation("res-a", "ord-a", lines, ReservationStatus.ACTIVE, T0,
                             T0 + timedelta(minutes=15))
        ended = Reservation("res-e", "ord-e", lines, ReservationStatus.EXPIRED, T0,
                            T0 + timedelta(minutes=15))
        with inventory_store.unit_of_work() as uow:
            uow.reservations.add(active)
            uow.reservations.add(ended)
            uow.commit()
        with inventory_store.unit_of_work() as uow:
            marked = uow.reservations.mark_held("res-a")  # type: ignore[attr-defined]
            uow.commit()
        assert marked is True
        with inventory_store.unit_of_work() as uow:
            held = uow.reservations.get("res-a")
            assert held == attrs.evolve(active.hold(), version=active.version + 1)
            for other in ("res-a", "res-e", "res-missing", "RES-A"):
                assert uow.reservations.mark_held(other) is False  # type: ignore[attr-defined]
            uow.commit()
        with inventory_store.unit_of_work() as uow:
            assert uow.reservations.get("res-a") == held
            assert uow.reservations.get("res-e") == ended
            assert uow.reservations.get("res-missing") is None
            # the version moved: a sweep that read it active loses its write
            with _raises(ConcurrencyConflict):
                uow.reservations.update(active.expire())

    def test_a_reservation_shipped_in_parts_keeps_what_each_line_shipped(
        self, inventory_store: InventoryStore
    ) -> None:
        self._seed(inventory_store)
        reservation = Reservation(
            "res-2", "ord-2",
            (ReservationLine("SKU-1", "BER", 3), ReservationLine("SKU-1", "AMS", 2)),
            ReservationStatus.HELD, T0, None,
        )
        with inventory_store.unit_of_work() as uow:
            uow.reservations.add(reservation)
            uow.commit()
        with inventory_store.unit_of_work() as uow:
            part = uow.reservations.update(reservation.commit_part({("SKU-1", "BER"): 2}))
            uow.commit()
        with inventory_store.unit_of_work() as uow:
            found = uow.reservations.get("res-2")
            assert found == part and [line.committed for line in part.lines] == [2, 0]
            assert [line.quantity for line in part.outstanding] == [1, 2]
            assert [r.id for r in uow.reservations.live()] == ["res-2"]
            rest = uow.reservations.update(part.commit_part({("SKU-1", "BER"): 1,
                                                             ("SKU-1", "AMS"): 2}))
            uow.commit()
        with inventory_store.unit_of_work() as uow:
            assert uow.reservations.get("res-2") == rest
            assert rest.status is ReservationStatus.COMMITTED and rest.outstanding == ()
            assert list(uow.reservations.live()) == []

    def test_the_ledger_appends_and_sums(self, inventory_store: InventoryStore) -> None:
        self._seed(inventory_store)
        with inventory_store.unit_of_work() as uow:
            uow.movements.append(StockMovement("SKU-1", "BER", 10, "receipt", T0))
            uow.movements.append(StockMovement("SKU-1", "BER", -3, "shipment", T0, "ord-1"))
            uow.movements.append(StockMovement("SKU-1", "AMS", 4, "receipt", T0))
            uow.commit()
        with inventory_store.unit_of_work() as uow:
            assert uow.movements.sums() == {("SKU-1", "BER"): 7, ("SKU-1", "AMS"): 4}
            newest = uow.movements.list("SKU-1", limit=2)
            assert [(m.warehouse, m.delta, m.reference) for m in newest] == [
                ("AMS", 4, None), ("BER", -3, "ord-1")]
            assert newest[1].at == T0

    def test_identifiers_that_differ_only_in_case_accents_or_spaces_are_distinct(
        self, inventory_store: InventoryStore
    ) -> None:
        # MySQL's and MariaDB's default collations would make each pair one row
        skus = ["mug-01", "MUG-01", "mug-01 ", "müg-01"]
        with inventory_store.unit_of_work() as uow:
            for n, sku in enumerate(skus):
                uow.products.add(Product(sku, f"product {n}", _eur(100 + n)))
            uow.warehouses.add(Warehouse("ber", "lower"))
            uow.warehouses.add(Warehouse("BER", "upper"))
            uow.commit()
        with inventory_store.unit_of_work() as uow:
            assert [uow.products.get(sku) for sku in skus] == [
                Product(sku, f"product {n}", _eur(100 + n)) for n, sku in enumerate(skus)]
            assert set(uow.products.get_many(["MUG-01", "mug-01"])) == {"MUG-01", "mug-01"}
            assert [w.name for w in uow.warehouses.list()] == ["upper", "lower"]
            uow.stock.add(StockLevel("mug-01", "ber", on_hand=1))
            uow.stock.add(StockLevel("MUG-01", "BER", on_hand=2))
            uow.commit()
        with inventory_store.unit_of_work() as uow:
            assert [(lv.sku, lv.warehouse, lv.on_hand) for lv in uow.stock.levels(["MUG-01"])
                    ] == [("MUG-01", "BER", 2)]

    def test_an_adjustment_key_is_used_once(self, inventory_store: InventoryStore) -> None:
        self._seed(inventory_store)
        first = StockMovement("SKU-1", "BER", 5, "receipt", T0, None, "adj-1")
        with inventory_store.unit_of_work() as uow:
            uow.movements.append(first)
            uow.movements.append(StockMovement("SKU-1", "BER", 1, "no key", T0))
            uow.movements.append(StockMovement("SKU-1", "BER", 1, "no key", T0))
            uow.movements.append(StockMovement("SKU-1", "BER", 2, "other case", T0, None,
                                               "ADJ-1"))
            uow.commit()
        with inventory_store.unit_of_work() as uow:
            assert uow.movements.by_key("adj-1") == first
            assert uow.movements.by_key("ADJ-1") is not None
            assert uow.movements.by_key("adj-1 ") is None
            assert uow.movements.sums() == {("SKU-1", "BER"): 9}
            with _raises(Conflict):
                uow.movements.append(StockMovement("SKU-1", "AMS", 1, "again", T0, None,
                                                   "adj-1"))

    def test_concurrent_reservations_never_oversell(
        self, inventory_store: InventoryStore
    ) -> None:
        service = InventoryService(inventory_store)
        service.upsert_warehouse("BER", name="Berlin")
        service.upsert_warehouse("AMS", name="Amsterdam")
        service.upsert_product("HOT", name="Hot item", price=_eur(100))
        service.adjust_stock("HOT", "BER", delta=7, reason="receipt")
        service.adjust_stock("HOT", "AMS", delta=5, reason="receipt")
        outcomes: list[str] = []
        lock = threading.Lock()

        def buyer(n: int) -> None:
            for i in range(6):
                try:
                    service.reserve(f"r-{n}-{i}", reference=f"o-{n}-{i}",
                                    lines=[LineRequest("HOT", 1)], ttl=timedelta(minutes=5))
                    result = "ok"
                except InsufficientStock:
                    result = "short"
                except ConcurrencyConflict:  # a store may refuse a racing writer outright
                    result = "conflict"
                with lock:
                    outcomes.append(result)

        _race(buyer)
        summary = service.stock("HOT")
        assert outcomes.count("ok") == summary.reserved == 12
        assert summary.on_hand == 12 and summary.available == 0
        assert all(lv.available >= 0 for lv in summary.levels)

    # -- the rules adapter authors had to guess (issue 19) ----------------------------------

    def test_low_stock_is_ordered_by_sku_and_cut_at_the_limit(
        self, inventory_store: InventoryStore
    ) -> None:
        """``low()``: ascending by SKU (not by how little is left), at most ``limit``; an
        active product with no stock level counts as 0, an inactive one never shows."""
        with inventory_store.unit_of_work() as uow:
            for sku, active in (("LOW-A", True), ("LOW-B", True), ("LOW-C", True),
                                ("LOW-D", True), ("LOW-E", False), ("LOW-F", True)):
                uow.products.add(Product(sku, sku.lower(), _eur(100), active=active))
            uow.warehouses.add(Warehouse("BER", "Berlin"))
            uow.warehouses.add(Warehouse("AMS", "Amsterdam"))
            uow.commit()
        with inventory_store.unit_of_work() as uow:
            uow.stock.add(StockLevel("LOW-A", "BER", on_hand=5))
            uow.stock.add(StockLevel("LOW-A", "AMS", on_hand=6, reserved=2))  # 9 in all
            uow.stock.add(StockLevel("LOW-B", "BER", on_hand=3, reserved=2))  # 1
            uow.stock.add(StockLevel("LOW-D", "AMS", on_hand=5))  # 5; LOW-C has no level: 0
            uow.stock.add(StockLevel("LOW-E", "BER", on_hand=0))  # inactive
            uow.stock.add(StockLevel("LOW-F", "BER", on_hand=50))  # above the threshold
            uow.commit()
        want = [("LOW-A", 9), ("LOW-B", 1), ("LOW-C", 0), ("LOW-D", 5)]
        with inventory_store.unit_of_work() as uow:
            got = [tuple(row) for row in uow.stock.low(10, limit=10)]
            assert got == want, f"low(10, limit=10) gave {got}, want {want} (by SKU)"
            got = [tuple(row) for row in uow.stock.low(10, limit=2)]
            assert got == want[:2], f"low(10, limit=2) gave {got}, want {want[:2]}"
            got = [tuple(row) for row in uow.stock.low(1, limit=10)]
            assert got == [("LOW-B", 1), ("LOW-C", 0)], \
                f"low(1, limit=10) gave {got}, want [('LOW-B', 1), ('LOW-C', 0)]"

    def test_adding_a_taken_warehouse_code_is_a_conflict_and_changes_nothing(
        self, inventory_store: InventoryStore
    ) -> None:
        self._seed(inventory_store)
        with inventory_store.unit_of_work() as uow:
            with _raises(Conflict, "warehouses.add() of the taken code 'BER'"):
                uow.warehouses.add(Warehouse("BER", "Elsewhere"))
            uow.commit()  # a caller that goes on: still nothing changed
        with inventory_store.unit_of_work() as uow:
            got = uow.warehouses.get("BER")
            assert got == Warehouse("BER", "Berlin"), f"warehouse BER is {got}, want Berlin"
            codes = [w.code for w in uow.warehouses.list()]
            assert codes == ["AMS", "BER"], f"warehouses.list() gave {codes}"

    def test_products_added_in_bulk_are_all_or_none_even_if_the_caller_commits(
        self, inventory_store: InventoryStore
    ) -> None:
        """``add_many()`` with a taken SKU (here the last one) adds none of them: a caller
        that catches the `Conflict` and commits its unit of work must not find the others
        written. A SKU given twice in one call is taken by the first."""
        self._seed(inventory_store)
        batch = [Product("NEW-1", "New", _eur(1)), Product("NEW-2", "Newer", _eur(2)),
                 Product("SKU-3", "Taken", _eur(3))]
        twice = [Product("NEW-3", "Once", _eur(1)), Product("NEW-3", "Twice", _eur(1))]
        for items in (batch, twice):
            skus = [p.sku for p in items]
            with inventory_store.unit_of_work() as uow:
                with _raises(Conflict, f"products.add_many({skus})"):
                    uow.products.add_many(items)
                uow.commit()
        with inventory_store.unit_of_work() as uow:
            found = uow.products.get_many(["NEW-1", "NEW-2", "NEW-3", "SKU-3"])
        assert sorted(found) == ["SKU-3"], \
            f"after the refused add_many() calls the store has {sorted(found)}, want ['SKU-3']"
        assert found["SKU-3"] == Product("SKU-3", "Pot", _eur(4999)), \
            f"SKU-3 is {found['SKU-3']}, want it as it was"

    def test_updating_a_missing_product_or_warehouse_writes_nothing(
        self, inventory_store: InventoryStore
    ) -> None:
        """``update()`` of a SKU or code that does not exist raises nothing and writes
        nothing: it neither creates the row nor touches another (the services read a row
        before they update it, in the same unit of work; a new one is added)."""
        self._seed(inventory_store)
        with inventory_store.unit_of_work() as uow:
            with _succeeds("products.update() of the missing SKU 'GHOST'"):
                uow.products.update(Product("GHOST", "Ghost", _eur(1)))
            with _succeeds("warehouses.update() of the missing code 'GHO'"):
                uow.warehouses.update(Warehouse("GHO", "Ghost town"))
            uow.commit()
        with inventory_store.unit_of_work() as uow:
            ghost = uow.products.get("GHOST")
            assert ghost is None, f"products.update() of a missing SKU created {ghost}"
            town = uow.warehouses.get("GHO")
            assert town is None, f"warehouses.update() of a missing code created {town}"
            got = uow.products.get_many(["SKU-1", "SKU-2", "SKU-3"])
            want = {"SKU-1": Product("SKU-1", "Mug", _eur(1999)),
                    "SKU-2": Product("SKU-2", "Cup", _eur(999), active=False),
                    "SKU-3": Product("SKU-3", "Pot", _eur(4999))}
            assert got == want, f"the other products are now {got}, want {want}"
            warehouses = {w.code: w for w in uow.warehouses.list()}
            assert warehouses == {"AMS": Warehouse("AMS", "Amsterdam"),
                                  "BER": Warehouse("BER", "Berlin")}, \
                f"the warehouses are now {warehouses}"

    def test_adding_a_stock_level_twice_is_a_conflict(
        self, inventory_store: InventoryStore
    ) -> None:
        self._seed(inventory_store)
        with inventory_store.unit_of_work() as uow:
            uow.stock.add(StockLevel("SKU-1", "BER", on_hand=10))
            uow.commit()
        with inventory_store.unit_of_work() as uow:
            with _raises(Conflict, "stock.add() of the existing level ('SKU-1', 'BER')"):
                uow.stock.add(StockLevel("SKU-1", "BER", on_hand=99, reserved=1))
            uow.commit()
        with inventory_store.unit_of_work() as uow:
            got = [(lv.sku, lv.warehouse, lv.on_hand, lv.reserved, lv.version)
                   for lv in uow.stock.levels(["SKU-1"])]
        assert got == [("SKU-1", "BER", 10, 0, 0)], \
            f"levels of SKU-1 are {got}, want [('SKU-1', 'BER', 10, 0, 0)]"

    def test_a_later_update_wins_and_levels_leave_out_skus_without_any(
        self, inventory_store: InventoryStore
    ) -> None:
        """Products carry no version: the last ``update()`` is what is kept. ``levels()``
        and ``lock()`` answer only the SKUs that have levels; updating a level that does
        not exist is a `ConcurrencyConflict` (it is gone, or was never added)."""
        self._seed(inventory_store)
        with inventory_store.unit_of_work() as uow:
            uow.products.update(Product("SKU-1", "Big mug", _eur(2499)))
            uow.commit()
        with inventory_store.unit_of_work() as uow:
            uow.products.update(Product("SKU-1", "Huge mug", _eur(2999)))
            uow.stock.add(StockLevel("SKU-1", "BER", on_hand=4))
            uow.commit()
        with inventory_store.unit_of_work() as uow:
            kept = uow.products.get("SKU-1")
            assert kept == Product("SKU-1", "Huge mug", _eur(2999)), \
                f"after two updates the product is {kept}, want the last one written"
            found = [(lv.sku, lv.warehouse) for lv in uow.stock.levels(["SKU-3", "SKU-1"])]
            assert found == [("SKU-1", "BER")], \
                f"levels(['SKU-3', 'SKU-1']) gave {found}; SKU-3 has no level"
            locked = [(lv.sku, lv.warehouse) for lv in uow.stock.lock(["SKU-3", "SKU-1"])]
            assert locked == [("SKU-1", "BER")], f"lock(['SKU-3', 'SKU-1']) gave {locked}"
            with _raises(ConcurrencyConflict, "stock.update() of a level never added"):
                uow.stock.update(StockLevel("SKU-3", "BER", on_hand=1))

    def test_adding_a_reservation_under_a_taken_id_is_a_conflict(
        self, inventory_store: InventoryStore
    ) -> None:
        self._seed(inventory_store)
        first = Reservation("res-1", "ord-1", (ReservationLine("SKU-1", "BER", 2),),
                            ReservationStatus.ACTIVE, T0, T0 + timedelta(minutes=15))
        with inventory_store.unit_of_work() as uow:
            uow.reservations.add(first)
            uow.commit()
        other = Reservation("res-1", "ord-2", (ReservationLine("SKU-3", "AMS", 5),),
                            ReservationStatus.HELD, T0, None)
        with inventory_store.unit_of_work() as uow:
            with _raises(Conflict, "reservations.add() of the taken id 'res-1'"):
                uow.reservations.add(other)
            uow.commit()
        with inventory_store.unit_of_work() as uow:
            got = uow.reservations.get("res-1")
        assert got == first, f"reservation res-1 is {got}, want {first}"

    def test_movements_are_listed_newest_first_per_sku_up_to_the_limit(
        self, inventory_store: InventoryStore
    ) -> None:
        """``movements.list(sku, limit=)``: that SKU's entries, the last appended first
        (across units of work), at most ``limit``."""
        self._seed(inventory_store)
        with inventory_store.unit_of_work() as uow:
            uow.movements.append(StockMovement("SKU-1", "BER", 10, "receipt", T0))
            uow.movements.append(StockMovement("SKU-3", "BER", 5, "receipt", T0))
            uow.commit()
        with inventory_store.unit_of_work() as uow:
            uow.movements.append(StockMovement("SKU-1", "AMS", 4, "receipt",
                                               T0 + timedelta(seconds=1)))
            uow.movements.append(StockMovement("SKU-1", "BER", -3, "shipment",
                                               T0 + timedelta(seconds=2), "ord-1"))
            uow.commit()
        want = [("BER", -3), ("AMS", 4), ("BER", 10)]
        with inventory_store.unit_of_work() as uow:
            def listed(sku: str, limit: int) -> list[tuple[str, int]]:
                return [(m.warehouse, m.delta) for m in uow.movements.list(sku, limit=limit)]

            for limit in (10, 2, 1):
                got = listed("SKU-1", limit)
                assert got == want[:limit], \
                    f"movements.list('SKU-1', limit={limit}) gave {got}, want {want[:limit]}"
            got = listed("SKU-3", 10)
            assert got == [("BER", 5)], f"movements.list('SKU-3') gave {got}"
            got = listed("SKU-2", 10)
            assert got == [], f"movements.list('SKU-2') gave {got}, want []"

    def test_expired_reservations_come_earliest_first_up_to_the_limit(
        self, inventory_store: InventoryStore
    ) -> None:
        """``expired(now, limit=)``: active reservations due at ``now``, ordered by
        ``expires_at`` then id, at most ``limit`` (a sweep takes the longest overdue
        first)."""
        self._seed(inventory_store)
        lines = (ReservationLine("SKU-1", "BER", 1),)

        def reservation(rid: str, status: ReservationStatus,
                        expires: timedelta | None) -> Reservation:
            return Reservation(rid, f"ord-{rid}", lines, status, T0,
                               None if expires is None else T0 + expires)

        with inventory_store.unit_of_work() as uow:
            for added in (reservation("res-c", ReservationStatus.ACTIVE, timedelta(minutes=1)),
                          reservation("res-a", ReservationStatus.ACTIVE, timedelta(minutes=3)),
                          reservation("res-b", ReservationStatus.ACTIVE, timedelta(minutes=1)),
                          reservation("res-0", ReservationStatus.ACTIVE, timedelta(hours=1)),
                          reservation("res-h", ReservationStatus.HELD, None),
                          reservation("res-x", ReservationStatus.EXPIRED, timedelta(0))):
                uow.reservations.add(added)
            uow.commit()
        now = T0 + timedelta(minutes=5)
        want = ["res-b", "res-c", "res-a"]
        with inventory_store.unit_of_work() as uow:
            for limit in (10, 2, 1):
                got = list(uow.reservations.expired(now, limit=limit))
                assert got == want[:limit], \
                    f"expired(T0+5m, limit={limit}) gave {got}, want {want[:limit]}"

    def test_live_reservations_are_ordered_by_id(self, inventory_store: InventoryStore) -> None:
        """``live()``: every active or held reservation (none that ended), by id."""
        self._seed(inventory_store)
        lines = (ReservationLine("SKU-1", "BER", 1),)
        statuses = {"res-d": ReservationStatus.HELD, "res-b": ReservationStatus.ACTIVE,
                    "res-e": ReservationStatus.RELEASED, "res-a": ReservationStatus.HELD,
                    "res-c": ReservationStatus.COMMITTED, "res-f": ReservationStatus.ACTIVE,
                    "res-0": ReservationStatus.EXPIRED}
        with inventory_store.unit_of_work() as uow:
            for rid, status in statuses.items():
                expires = T0 + timedelta(minutes=15) if status is ReservationStatus.ACTIVE \
                    else None
                uow.reservations.add(Reservation(rid, f"ord-{rid}", lines, status, T0, expires))
            uow.commit()
        with inventory_store.unit_of_work() as uow:
            got = [r.id for r in uow.reservations.live()]
        want = ["res-a", "res-b", "res-d", "res-f"]
        assert got == want, f"live() gave {got}, want {want}"


def _order(order_id: str = "ord_01", customer: str = "c-1", **changes: Any) -> Order:
    order = Order.place(
        id=order_id, customer_id=customer,
        lines=(OrderLine("SKU-1", "Mug", 2, _eur(1999)), OrderLine("SKU-3", "Pot", 1, _eur(500))),
        shipping_address=Address("Ada", "Main St 1", "Berlin", "10115", "DE", line2="Floor 2"),
        payment_token="tok_visa", at=T0,
    )
    return attrs.evolve(order, payment_id=f"pay-{order_id}", **changes)


class OrderStoreConformance:
    """What every `OrderStore` must do.

    Needs a fixture ``order_store``: a fresh, empty store.
    """

    def test_an_order_round_trips_with_everything_on_it(self, order_store: OrderStore) -> None:
        order = _order()
        with order_store.unit_of_work() as uow:
            uow.orders.add(order)
            uow.commit()
        with order_store.unit_of_work() as uow:
            assert uow.orders.get(order.id) == order
            assert uow.orders.get("missing") is None
        changed = order.transition(OrderStatus.CONFIRMED, T0 + timedelta(seconds=1),
                                   saga_step=SagaStep.DONE)
        changed = changed.transition(
            OrderStatus.SHIPPED, T0 + timedelta(seconds=2),
            shipments=(Shipment("DHL", "JD0001", T0 + timedelta(seconds=2), id="shp-1",
                                lines=(ShipmentLine("SKU-1", 2), ShipmentLine("SKU-3", 1))),),
            lines=tuple(attrs.evolve(line, shipped_quantity=line.quantity)
                        for line in order.lines),
        )
        with order_store.unit_of_work() as uow:
            saved = uow.orders.update(changed)
            uow.commit()
        with order_store.unit_of_work() as uow:
            assert uow.orders.get(order.id) == saved
            assert saved.version == 1 and saved.total == _eur(4498)
            assert [h.status for h in saved.history] == ["pending", "confirmed", "shipped"]

    def test_an_order_shipped_in_parts_keeps_its_parcels_and_its_lines_progress(
        self, order_store: OrderStore
    ) -> None:
        order = _order(status=OrderStatus.CONFIRMED, saga_step=SagaStep.DONE)
        with order_store.unit_of_work() as uow:
            uow.orders.add(order)
            uow.commit()
        first = Shipment("DHL", "JD0001", T0 + timedelta(hours=1), id="shp-1",
                         lines=(ShipmentLine("SKU-1", 1),), warehouse="BER")
        part = order.transition(OrderStatus.PARTIALLY_SHIPPED, T0 + timedelta(hours=1),
                                shipments=(first,), lines=order.count_shipped(first))
        with order_store.unit_of_work() as uow:
            part = uow.orders.update(part)
            uow.commit()
        with order_store.unit_of_work() as uow:
            found = uow.orders.get(order.id)
            assert found == part and found is not None
            assert [(line.shipped_quantity, line.left) for line in found.lines] == [
                (1, 1), (0, 1)]
            assert found.shipment == first
        second = Shipment("UPS", "1Z999", T0 + timedelta(hours=2), id="shp-2",
                          lines=(ShipmentLine("SKU-1", 1),))
        rest = part.transition(OrderStatus.SHIPPED, T0 + timedelta(hours=2),
                               shipments=(first, second))
        rest = attrs.evolve(rest, lines=rest.count_shipped(second))
        rest = attrs.evolve(rest, lines=rest.cancel_left())
        with order_store.unit_of_work() as uow:
            rest = uow.orders.update(rest)
            uow.commit()
        with order_store.unit_of_work() as uow:
            found = uow.orders.get(order.id)
            listed = uow.orders.list(customer_id=None, status=OrderStatus.SHIPPED, before=None,
                                     limit=5)
        assert found == rest and list(listed) == [rest]
        assert [(line.shipped_quantity, line.cancelled_quantity) for line in rest.lines] == [
            (2, 0), (0, 1)]
        assert [s.id for s in rest.shipments] == ["shp-1", "shp-2"]

    def test_an_order_keeps_its_returns_in_every_state(self, order_store: OrderStore) -> None:
        order = _order(status=OrderStatus.SHIPPED, saga_step=SagaStep.DONE)
        order = attrs.evolve(order, lines=tuple(
            attrs.evolve(line, shipped_quantity=line.quantity) for line in order.lines))
        with order_store.unit_of_work() as uow:
            uow.orders.add(order)
            uow.commit()
        at = T0 + timedelta(days=3)
        asked = Return(id=f"ret_{order.id}_1", order_id=order.id,
                       lines=(ReturnLine("SKU-1", 1), ReturnLine("SKU-3", 1)),
                       reason="too small ✓", status=ReturnStatus.REQUESTED, requested_at=at,
                       updated_at=at)
        refunded = attrs.evolve(
            asked, id=f"ret_{order.id}_2", status=ReturnStatus.REFUNDED, warehouse="BER",
            restock=True, received_at=at + timedelta(hours=1), refund=_eur(1999),
            include_shipping=True, shipping_refund=_eur(0), updated_at=at + timedelta(hours=2))
        rejected = attrs.evolve(asked, id=f"ret_{order.id}_3", status=ReturnStatus.REJECTED,
                                rejection_reason="worn", restock=False, warehouse="AMS",
                                received_at=at)
        changed = attrs.evolve(order, returns=(asked, refunded, rejected), updated_at=at,
                               saga_step=SagaStep.REFUNDING_RETURN)
        with order_store.unit_of_work() as uow:
            saved = uow.orders.update(changed)
            uow.commit()
        with order_store.unit_of_work() as uow:
            found = uow.orders.get(order.id)
        assert found == saved and found is not None
        assert found.returns == (asked, refunded, rejected)
        assert found.saga_step is SagaStep.REFUNDING_RETURN

    def test_a_priced_order_round_trips_with_its_adjustments_taxes_and_metadata(
        self, order_store: OrderStore
    ) -> None:
        order = _order(
            adjustments=(Adjustment(AdjustmentKind.SHIPPING, "express", "Express", _eur(995)),
                         Adjustment(AdjustmentKind.DISCOUNT, "WELCOME10", "Welcome",
                                    _eur(450))),
            taxes=(Tax("DE", 1900, False, _eur(971)),), voucher_code="WELCOME10",
            email="ada@example.com", metadata={"gift_note": "Für dich\nAda", "cart": "c-9"})
        with order_store.unit_of_work() as uow:
            uow.orders.add(order)
            uow.commit()
        with order_store.unit_of_work() as uow:
            found = uow.orders.get(order.id)
            listed = uow.orders.list(customer_id=None, status=None, before=None, limit=5)
        assert found == order and list(listed) == [order]
        assert order.subtotal == _eur(4498) and order.total == _eur(4498 + 995 - 450 + 971)
        changed = attrs.evolve(order, metadata={"cart": "c-10"})
        with order_store.unit_of_work() as uow:
            saved = uow.orders.update(changed)
            uow.commit()
        with order_store.unit_of_work() as uow:
            assert uow.orders.get(order.id) == saved and saved.metadata == {"cart": "c-10"}

    def test_metadata_at_its_bounds_round_trips(self, order_store: OrderStore) -> None:
        # 20 keys of 500 characters outside the Basic Multilingual Plane: ~120 KB as JSON
        # with escapes, beyond a MySQL TEXT column's 64 KiB
        metadata = {f"note-{n:02d}": "\U0001f381" * 500 for n in range(20)}
        order = _order(metadata=metadata, email="ada@example.com")
        with order_store.unit_of_work() as uow:
            uow.orders.add(order)
            uow.commit()
        with order_store.unit_of_work() as uow:
            found = uow.orders.get(order.id)
        assert found is not None and found.metadata == metadata

    def test_a_voucher_is_used_at_most_its_limit_and_given_back(
        self, order_store: OrderStore
    ) -> None:
        def redeem(order_id: str, customer: str, limit: int | None = 2,
                   once: bool = False) -> None:
            with order_store.unit_of_work() as uow:
                uow.redemptions.redeem("SPRING", order_id=order_id, customer_id=customer,
                                       usage_limit=limit, once_per_customer=once, at=T0)
                uow.commit()

        redeem("ord_01", "alice")
        redeem("ord_02", "bob")
        with _voucher_refused("used-up"):  # a third use of a voucher limited to two
            redeem("ord_03", "carol")
        with order_store.unit_of_work() as uow:
            assert uow.redemptions.used("SPRING") == 2 and uow.redemptions.used("spring") == 0
            assert uow.redemptions.used_by("SPRING", "bob")
            assert not uow.redemptions.used_by("SPRING", "carol")
            assert uow.redemptions.release("ord_02") and not uow.redemptions.release("ord_02")
            assert not uow.redemptions.release("ord_99")
            uow.commit()
        redeem("ord_03", "carol")  # bob's use was given back
        redeem("ord_04", "dave", limit=None)  # no limit: counted all the same
        with order_store.unit_of_work() as uow:
            assert uow.redemptions.used("SPRING") == 3
            assert not uow.redemptions.used_by("SPRING", "bob")

    def test_a_voucher_once_per_customer_is_refused_a_second_time(
        self, order_store: OrderStore
    ) -> None:
        with order_store.unit_of_work() as uow:
            uow.redemptions.redeem("ONCE", order_id="ord_01", customer_id="alice",
                                   usage_limit=None, once_per_customer=True, at=T0)
            uow.commit()
        with order_store.unit_of_work() as uow, _voucher_refused("already-used"):
            uow.redemptions.redeem("ONCE", order_id="ord_02", customer_id="alice",
                                   usage_limit=None, once_per_customer=True, at=T0)
        with order_store.unit_of_work() as uow:
            uow.redemptions.redeem("ONCE", order_id="ord_03", customer_id="Alice",
                                   usage_limit=None, once_per_customer=True, at=T0)
            uow.redemptions.release("ord_01")
            uow.redemptions.redeem("ONCE", order_id="ord_04", customer_id="alice",
                                   usage_limit=None, once_per_customer=True, at=T0)
            uow.commit()
        with order_store.unit_of_work() as uow:
            assert uow.redemptions.used("ONCE") == 2

    def test_a_use_not_committed_is_not_counted(self, order_store: OrderStore) -> None:
        with order_store.unit_of_work() as uow:
            uow.redemptions.redeem("GONE", order_id="ord_01", customer_id="alice",
                                   usage_limit=1, once_per_customer=True, at=T0)
        with order_store.unit_of_work() as uow:
            assert uow.redemptions.used("GONE") == 0
            assert not uow.redemptions.used_by("GONE", "alice")
            uow.redemptions.redeem("GONE", order_id="ord_02", customer_id="alice",
                                   usage_limit=1, once_per_customer=True, at=T0)
            uow.commit()

    def test_concurrent_redemptions_never_exceed_the_limit(
        self, order_store: OrderStore
    ) -> None:
        outcomes: list[str] = []
        lock = threading.Lock()

        def customer(n: int) -> None:
            for i in range(4):
                try:
                    with order_store.unit_of_work() as uow:
                        uow.redemptions.redeem("LAST", order_id=f"ord_{n}_{i}",
                                               customer_id=f"c{n}", usage_limit=5,
                                               once_per_customer=False, at=T0)
                        uow.commit()
                    result = "ok"
                except VoucherNotApplicable:
                    result = "used-up"
                except ConcurrencyConflict:  # a store may refuse a racing writer outright
                    result = "conflict"
                with lock:
                    outcomes.append(result)

        _race(customer)
        with order_store.unit_of_work() as uow:
            assert outcomes.count("ok") == uow.redemptions.used("LAST") == 5

    def test_a_stale_order_is_not_written(self, order_store: OrderStore) -> None:
        order = _order()
        with order_store.unit_of_work() as uow:
            uow.orders.add(order)
            uow.orders.update(order.step(SagaStep.RESERVED, T0))
            uow.commit()
        with order_store.unit_of_work() as uow, _raises(ConcurrencyConflict):
            uow.orders.update(order.step(SagaStep.RESERVED, T0))

    def test_a_failed_order_keeps_its_reason(self, order_store: OrderStore) -> None:
        order = _order().transition(OrderStatus.FAILED, T0, saga_step=SagaStep.DONE,
                                    failure_reason="payment-declined", failure_detail="no")
        with order_store.unit_of_work() as uow:
            uow.orders.add(order)
            uow.commit()
        with order_store.unit_of_work() as uow:
            assert uow.orders.get(order.id) == order

    def test_orders_list_newest_first_with_filters_and_pages(
        self, order_store: OrderStore
    ) -> None:
        confirmed = {"status": OrderStatus.CONFIRMED, "saga_step": SagaStep.DONE}
        with order_store.unit_of_work() as uow:
            uow.orders.add(_order("ord_01", "alice"))
            uow.orders.add(_order("ord_02", "bob", **confirmed))
            uow.orders.add(_order("ord_03", "alice", **confirmed))
            uow.commit()
        with order_store.unit_of_work() as uow:
            def ids(**kw: object) -> list[str]:
                return [o.id for o in uow.orders.list(**kw)]  # type: ignore[arg-type]

            none = {"customer_id": None, "status": None, "before": None}
            assert ids(**none, limit=10) == ["ord_03", "ord_02", "ord_01"]
            assert ids(**{**none, "customer_id": "alice"}, limit=10) == ["ord_03", "ord_01"]
            assert ids(**{**none, "status": OrderStatus.CONFIRMED}, limit=10) == [
                "ord_03", "ord_02"]
            assert ids(**{**none, "before": "ord_03"}, limit=1) == ["ord_02"]

    def test_unfinished_sagas_are_found(self, order_store: OrderStore) -> None:
        done = {"status": OrderStatus.CONFIRMED, "saga_step": SagaStep.DONE}
        with order_store.unit_of_work() as uow:
            uow.orders.add(_order("ord_01"))
            uow.orders.add(_order("ord_02", **done))
            uow.orders.add(_order("ord_03", saga_step=SagaStep.COMPENSATING))
            uow.commit()
        with order_store.unit_of_work() as uow:
            found = uow.orders.unfinished(updated_before=T0, limit=10)
            assert [o.id for o in found] == ["ord_01", "ord_03"]
            assert list(uow.orders.unfinished(updated_before=T0 - timedelta(seconds=1),
                                              limit=10)) == []
            # touched later: behind the others, so that a sweep gets to them all in turn
            uow.orders.update(found[0].step(SagaStep.STARTED, T0 + timedelta(seconds=1)))
            uow.commit()
        with order_store.unit_of_work() as uow:
            later = T0 + timedelta(seconds=1)
            assert [o.id for o in uow.orders.unfinished(updated_before=later, limit=10)
                    ] == ["ord_03", "ord_01"]
            assert [o.id for o in uow.orders.unfinished(updated_before=later, limit=1)
                    ] == ["ord_03"]

    def test_a_payment_round_trips_through_its_life(self, order_store: OrderStore) -> None:
        payment = Payment.start(id="pay-1", order_id="ord_01", amount=_eur(4498), at=T0)
        with order_store.unit_of_work() as uow:
            uow.payments.add(payment)
            uow.commit()
        later = (payment.authorize("auth-1", T0).capture(_eur(4498), T0)
                 .request_refund(_eur(1000), "broken", T0))
        with order_store.unit_of_work() as uow:
            assert uow.payments.get("pay-1") == payment
            saved = uow.payments.update(later)
            uow.commit()
        with order_store.unit_of_work() as uow:
            assert uow.payments.get("pay-1") == saved
            assert saved.pending_refund is not None and saved.version == 1
            assert [p.id for p in uow.payments.list(after=None, limit=5)] == ["pay-1"]
            assert uow.payments.get_many(["pay-1", "pay-nope"]) == {"pay-1": saved}
            with _raises(ConcurrencyConflict):
                uow.payments.update(later)

    def test_an_idempotency_key_is_taken_once_per_scope(self, order_store: OrderStore) -> None:
        record = IdempotencyRecord("alice", "key-1", "f" * 64, "ord_01", T0)
        with order_store.unit_of_work() as uow:
            uow.idempotency.add(record)
            uow.idempotency.add(IdempotencyRecord("bob", "key-1", "e" * 64, "ord_02", T0))
            uow.commit()
        with order_store.unit_of_work() as uow:
            assert uow.idempotency.get("alice", "key-1") == record
            assert uow.idempotency.get("alice", "key-2") is None
        with order_store.unit_of_work() as uow, _raises(Conflict):
            uow.idempotency.add(IdempotencyRecord("alice", "key-1", "0" * 64, "ord_09", T0))

    def test_the_first_response_under_a_key_is_kept(self, order_store: OrderStore) -> None:
        with order_store.unit_of_work() as uow:
            uow.idempotency.add(IdempotencyRecord("alice", "key-1", "f" * 64, "ord_01", T0))
            uow.commit()
        body = '{"id": "ord_01", "note": "ünïcode and ' + "x" * 70000 + '"}'
        with order_store.unit_of_work() as uow:
            uow.idempotency.save_response("alice", "key-1", 201, body)
            uow.idempotency.save_response("nobody", "key-1", 500, "{}")  # no record: no-op
            uow.commit()
        with order_store.unit_of_work() as uow:
            uow.idempotency.save_response("alice", "key-1", 409, "{}")  # the first one wins
            uow.commit()
        with order_store.unit_of_work() as uow:
            record = uow.idempotency.get("alice", "key-1")
            assert record is not None
            assert (record.response_status, record.response_body) == (201, body)
            assert uow.idempotency.get("nobody", "key-1") is None

    def test_a_provider_event_is_recorded_once(self, order_store: OrderStore) -> None:
        with order_store.unit_of_work() as uow:
            assert not uow.notifications.seen("stripe", "evt_1")
            uow.notifications.add("stripe", "evt_1", kind="captured", reference="ord_01",
                                  at=T0)
            uow.notifications.add("other", "evt_1", kind="captured", reference=None, at=T0)
            uow.commit()
        with order_store.unit_of_work() as uow:
            assert uow.notifications.seen("stripe", "evt_1")
            with _raises(Conflict):
                uow.notifications.add("stripe", "evt_1", kind="captured", reference=None,
                                      at=T0)

    def test_orders_list_by_several_statuses(self, order_store: OrderStore) -> None:
        confirmed = {"status": OrderStatus.CONFIRMED, "saga_step": SagaStep.DONE}
        failed = {"status": OrderStatus.FAILED, "saga_step": SagaStep.DONE}
        with order_store.unit_of_work() as uow:
            uow.orders.add(_order("ord_01", "alice", **confirmed))
            uow.orders.add(_order("ord_02", "alice", **failed))
            uow.orders.add(_order("ord_03", "alice"))
            uow.commit()
        with order_store.unit_of_work() as uow:
            found = uow.orders.list(customer_id="alice", before=None, limit=10, status=[
                OrderStatus.CONFIRMED, OrderStatus.FAILED])
            assert [o.id for o in found] == ["ord_02", "ord_01"]
            assert uow.orders.list(customer_id=None, status=[], before=None, limit=10) == []

    def test_failed_orders_are_purged_with_their_payments_and_keys(
        self, order_store: OrderStore
    ) -> None:
        failed = {"status": OrderStatus.FAILED, "saga_step": SagaStep.DONE}
        with order_store.unit_of_work() as uow:
            for n, changes in enumerate([failed, failed, {}]):
                order = _order(f"ord_0{n}", **changes)
                uow.orders.add(order)
                uow.payments.add(Payment.start(id=str(order.payment_id), order_id=order.id,
                                               amount=_eur(100), at=T0))
                uow.idempotency.add(IdempotencyRecord("c-1", f"k{n}", "f" * 64, order.id, T0))
            uow.idempotency.add(IdempotencyRecord("", "request", "f" * 64, None, T0))
            uow.commit()
        with order_store.unit_of_work() as uow:
            assert uow.orders.purge_failed(failed_before=T0, limit=10) == 0  # not before T0
            assert uow.orders.purge_failed(failed_before=T0 + timedelta(1), limit=1) == 1
            assert uow.orders.purge_failed(failed_before=T0 + timedelta(1), limit=10) == 1
            uow.commit()
        with order_store.unit_of_work() as uow:
            assert [o.id for o in uow.orders.list(customer_id=None, status=None, before=None,
                                                  limit=10)] == ["ord_02"]
            assert uow.payments.get_many(["pay-ord_00", "pay-ord_01", "pay-ord_02"]).keys() \
                == {"pay-ord_02"}
            assert uow.idempotency.get("c-1", "k0") is None
            assert uow.idempotency.get("c-1", "k2") is not None
            assert uow.idempotency.get("", "request") is not None

    def test_old_records_of_requests_that_made_no_order_are_purged(
        self, order_store: OrderStore
    ) -> None:
        with order_store.unit_of_work() as uow:
            uow.idempotency.add(IdempotencyRecord("", "old", "f" * 64, None, T0))
            uow.idempotency.add(IdempotencyRecord("", "new", "f" * 64, None,
                                                  T0 + timedelta(days=2)))
            uow.idempotency.add(IdempotencyRecord("c", "order", "f" * 64, "ord_1", T0))
            uow.commit()
        with order_store.unit_of_work() as uow:
            assert uow.idempotency.purge_requests(created_before=T0 + timedelta(days=1),
                                                  limit=10) == 1
            uow.commit()
        with order_store.unit_of_work() as uow:
            assert uow.idempotency.get("", "old") is None
            assert uow.idempotency.get("", "new") is not None
            assert uow.idempotency.get("c", "order") is not None  # it made an order: kept

    def test_requests_are_purged_strictly_before_the_time_the_oldest_first_up_to_the_limit(
        self, order_store: OrderStore
    ) -> None:
        with order_store.unit_of_work() as uow:
            for hour in (2, 0, 1):  # added out of order
                uow.idempotency.add(IdempotencyRecord("", f"h{hour}", "f" * 64, None,
                                                      T0 + timedelta(hours=hour)))
            uow.commit()
        cutoff = T0 + timedelta(hours=2)  # h2 was made exactly then: not before it
        with order_store.unit_of_work() as uow:
            first = uow.idempotency.purge_requests(created_before=cutoff, limit=1)
            uow.commit()
        with order_store.unit_of_work() as uow:
            left = [k for k in ("h0", "h1", "h2") if uow.idempotency.get("", k) is not None]
        assert (first, left) == (1, ["h1", "h2"]), \
            f"purge_requests(limit=1) deleted {first}, left {left}: want 1, the oldest (h0)"
        with order_store.unit_of_work() as uow:
            second = uow.idempotency.purge_requests(created_before=cutoff, limit=10)
            uow.commit()
        with order_store.unit_of_work() as uow:
            left = [k for k in ("h0", "h1", "h2") if uow.idempotency.get("", k) is not None]
        assert (second, left) == (1, ["h2"]), \
            f"purge_requests(created_before=h2's time) deleted {second}, left {left}: " \
            "want h1 deleted and h2 kept (strictly before)"

    def test_a_record_given_up_is_discarded_only_as_it_was(
        self, order_store: OrderStore
    ) -> None:
        with order_store.unit_of_work() as uow:
            uow.idempotency.add(IdempotencyRecord("alice", "k", "f" * 64, "ord_01", T0))
            uow.idempotency.add(IdempotencyRecord("alice", "answered", "f" * 64, None, T0))
            uow.idempotency.save_response("alice", "answered", 201, "{}")
            uow.commit()
        with order_store.unit_of_work() as uow:
            assert uow.idempotency.get("alice", "answered") is not None
            assert not uow.idempotency.discard("alice", "k", created_at=T0 + timedelta(1))
            assert not uow.idempotency.discard("alice", "answered", created_at=T0)
            assert not uow.idempotency.discard("bob", "k", created_at=T0)
            assert uow.idempotency.discard("alice", "k", created_at=T0)
            uow.idempotency.add(IdempotencyRecord("alice", "k", "e" * 64, "ord_02", T0))
            uow.commit()
        with order_store.unit_of_work() as uow:
            record = uow.idempotency.get("alice", "k")
            assert record is not None and record.order_id == "ord_02"
            answered = uow.idempotency.get("alice", "answered")
            assert answered is not None and answered.order_id is None

    def test_a_payment_is_found_by_its_authorization(self, order_store: OrderStore) -> None:
        held = Payment.start(id="pay-1", order_id="ord_01", amount=_eur(100), at=T0)
        with order_store.unit_of_work() as uow:
            uow.payments.add(held)
            uow.payments.add(Payment.start(id="pay-2", order_id="ord_02", amount=_eur(1), at=T0))
            saved = uow.payments.update(held.authorize("pi_Abc", T0))
            uow.commit()
        with order_store.unit_of_work() as uow:
            assert uow.payments.by_authorization("pi_Abc") == saved
            assert uow.payments.by_authorization("pi_abc") is None
            assert uow.payments.by_authorization("pi_Abc ") is None

    def test_keys_and_ids_that_differ_only_in_case_accents_or_spaces_are_distinct(
        self, order_store: OrderStore
    ) -> None:
        # MySQL's and MariaDB's default collations would make each of these one row: the
        # second order under a key lost, and one customer shown another's orders
        keys = ["order-7f3A", "order-7f3a", "order-7f3a ", "ordér-7f3a"]
        customers = ["alice", "Alice", "álice", "alice "]
        with order_store.unit_of_work() as uow:
            for n, (key, customer) in enumerate(zip(keys, customers, strict=True)):
                uow.idempotency.add(IdempotencyRecord("alice", key, f"{n}" * 64, f"ord_0{n}",
                                                      T0))
                uow.orders.add(_order(f"ord_0{n}", customer))
                uow.notifications.add("stripe", key, kind="captured", reference=None, at=T0)
            uow.commit()
        with order_store.unit_of_work() as uow:
            found = [uow.idempotency.get("alice", key) for key in keys]
            assert [r.order_id if r else None for r in found] == [
                "ord_00", "ord_01", "ord_02", "ord_03"]
            assert uow.idempotency.get("Alice", "order-7f3A") is None
            for n, customer in enumerate(customers):
                listed = uow.orders.list(customer_id=customer, status=None, before=None,
                                         limit=10)
                assert [o.id for o in listed] == [f"ord_0{n}"]
            assert not uow.notifications.seen("stripe", "ORDER-7F3A")
            assert uow.notifications.seen("stripe", "ordér-7f3a")

    def test_nothing_is_kept_unless_committed(self, order_store: OrderStore) -> None:
        with order_store.unit_of_work() as uow:
            uow.orders.add(_order())
        with order_store.unit_of_work() as uow:
            assert uow.orders.get("ord_01") is None

    # -- the rules adapter authors had to guess (issue 19) ----------------------------------

    def test_adding_an_order_under_a_taken_id_is_a_conflict(
        self, order_store: OrderStore
    ) -> None:
        order = _order("ord_01", "alice")
        with order_store.unit_of_work() as uow:
            uow.orders.add(order)
            uow.commit()
        with order_store.unit_of_work() as uow:
            with _raises(Conflict, "orders.add() of the taken id 'ord_01'"):
                uow.orders.add(_order("ord_01", "bob"))
            uow.commit()
        with order_store.unit_of_work() as uow:
            got = uow.orders.get("ord_01")
        assert got == order, f"order ord_01 is {got}, want alice's as it was"

    def test_adding_a_payment_under_a_taken_id_is_a_conflict(
        self, order_store: OrderStore
    ) -> None:
        payment = Payment.start(id="pay-1", order_id="ord_01", amount=_eur(4498), at=T0)
        with order_store.unit_of_work() as uow:
            uow.payments.add(payment)
            uow.commit()
        with order_store.unit_of_work() as uow:
            with _raises(Conflict, "payments.add() of the taken id 'pay-1'"):
                uow.payments.add(Payment.start(id="pay-1", order_id="ord_02",
                                               amount=_eur(1), at=T0))
            uow.commit()
        with order_store.unit_of_work() as uow:
            got = uow.payments.get("pay-1")
        assert got == payment, f"payment pay-1 is {got}, want {payment}"

    def test_payments_are_listed_by_id_after_a_cursor_up_to_the_limit(
        self, order_store: OrderStore
    ) -> None:
        with order_store.unit_of_work() as uow:
            for n in (3, 1, 4, 2):
                uow.payments.add(Payment.start(id=f"pay-{n}", order_id=f"ord_0{n}",
                                               amount=_eur(100 * n), at=T0))
            uow.commit()
        with order_store.unit_of_work() as uow:
            for after, limit, want in ((None, 10, ["pay-1", "pay-2", "pay-3", "pay-4"]),
                                       (None, 2, ["pay-1", "pay-2"]),
                                       ("pay-2", 1, ["pay-3"]),
                                       ("pay-2", 10, ["pay-3", "pay-4"]),
                                       ("pay-4", 10, [])):
                got = [p.id for p in uow.payments.list(after=after, limit=limit)]
                assert got == want, \
                    f"payments.list(after={after!r}, limit={limit}) gave {got}, want {want}"

    def test_unfinished_orders_touched_at_once_come_by_id_up_to_the_limit(
        self, order_store: OrderStore
    ) -> None:
        """``unfinished()``: the least recently touched first; orders touched at the same
        moment by id, whatever order they were added in; at most ``limit``."""
        with order_store.unit_of_work() as uow:
            for order_id in ("ord_03", "ord_02", "ord_01"):
                uow.orders.add(_order(order_id))
            uow.orders.add(attrs.evolve(_order("ord_09"), updated_at=T0 - timedelta(seconds=5)))
            uow.orders.add(_order("ord_00", status=OrderStatus.CONFIRMED,
                                  saga_step=SagaStep.DONE))
            uow.commit()
        want = ["ord_09", "ord_01", "ord_02", "ord_03"]
        with order_store.unit_of_work() as uow:
            for limit in (10, 2):
                got = [o.id for o in uow.orders.unfinished(updated_before=T0, limit=limit)]
                assert got == want[:limit], \
                    f"unfinished(updated_before=T0, limit={limit}) gave {got}, " \
                    f"want {want[:limit]}"


#: a W3C ``traceparent`` (the specification's example)
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def _event(n: int, aggregate: str = "ord_1") -> DomainEvent:
    return DomainEvent(
        id=f"evt_{n:04d}", type="order.confirmed" if n % 2 else "order.placed",
        aggregate_type="order", aggregate_id=aggregate, sequence=n,
        occurred_at=T0 + timedelta(seconds=n),
        payload={"n": n, "nested": {"text": "Grüße", "list": [1, None, True]}},
    )


class OrderReportsConformance:
    """What an order store whose repository offers `OrderReports` (the console's
    dashboard) must do.

    Needs a fixture ``order_store``: a fresh, empty store.
    """

    def _add(self, order_store: OrderStore, *orders: tuple[Order, Payment | None]) -> None:
        with order_store.unit_of_work() as uow:
            for order, payment in orders:
                uow.orders.add(order)
                if payment is not None:
                    uow.payments.add(payment)
            uow.commit()

    def test_the_summary_counts_and_sums_the_orders_since_an_id(
        self, order_store: OrderStore
    ) -> None:
        def placed(n: int, status: OrderStatus, amount: int | None, *, reason: str | None = None,
                   currency: str = "EUR") -> tuple[Order, Payment | None]:
            order = attrs.evolve(_order(f"ord_{n:02d}"), status=status, failure_reason=reason,
                                 currency=currency,
                                 payment_id=None if amount is None else f"pay-{n}")
            payment = (None if amount is None else Payment.start(
                id=f"pay-{n}", order_id=order.id, amount=Money(amount, currency), at=T0))
            return order, payment

        self._add(order_store,
                  placed(1, OrderStatus.CONFIRMED, 999),  # before the bound: not counted
                  placed(2, OrderStatus.CONFIRMED, 1000),
                  placed(3, OrderStatus.CONFIRMED, 2500),
                  placed(4, OrderStatus.SHIPPED, 700, currency="USD"),
                  placed(5, OrderStatus.FAILED, None, reason="out_of_stock"),
                  placed(6, OrderStatus.FAILED, 300, reason="payment_declined"),
                  placed(7, OrderStatus.FAILED, None, reason="out_of_stock"),
                  placed(8, OrderStatus.CANCELLED, 400))
        with order_store.unit_of_work() as uow:
            reports = uow.orders
            assert isinstance(reports, OrderReports)
            rows = sorted(reports.summary(since="ord_02"),
                          key=lambda r: (r.status.value, r.failure_reason or "", r.currency))
            assert list(reports.summary(since="ord_99")) == []
        assert rows == [
            SummaryRow(OrderStatus.CANCELLED, None, "EUR", 1, 400),
            SummaryRow(OrderStatus.CONFIRMED, None, "EUR", 2, 3500),
            SummaryRow(OrderStatus.FAILED, "out_of_stock", "EUR", 2, 0),
            SummaryRow(OrderStatus.FAILED, "payment_declined", "EUR", 1, 300),
            SummaryRow(OrderStatus.SHIPPED, None, "USD", 1, 700),
        ]

    def test_orders_with_a_return_waiting_are_found_newest_first(
        self, order_store: OrderStore
    ) -> None:
        at = T0 + timedelta(days=3)

        def with_returns(n: int, *statuses: ReturnStatus) -> Order:
            order = _order(f"ord_{n:02d}", status=OrderStatus.SHIPPED, saga_step=SagaStep.DONE)
            return attrs.evolve(order, returns=tuple(
                Return(id=f"ret_{order.id}_{i}", order_id=order.id,
                       lines=(ReturnLine("SKU-1", 1),), reason="no", status=status,
                       requested_at=at, updated_at=at)
                for i, status in enumerate(statuses, 1)))

        self._add(order_store, *((order, None) for order in (
            with_returns(1, ReturnStatus.REQUESTED),
            with_returns(2),
            with_returns(3, ReturnStatus.REFUNDED, ReturnStatus.REJECTED),
            with_returns(4, ReturnStatus.REJECTED, ReturnStatus.RECEIVED),
            with_returns(5, ReturnStatus.REQUESTED))))
        with order_store.unit_of_work() as uow:
            reports = uow.orders
            assert isinstance(reports, OrderReports)
            assert [o.id for o in reports.open_returns(limit=10)] == ["ord_05", "ord_04",
                                                                      "ord_01"]
            assert [o.id for o in reports.open_returns(limit=1)] == ["ord_05"]
        # once refunded, an order waits no more: the count follows each update
        with order_store.unit_of_work() as uow:
            found = uow.orders.get("ord_05")
            assert found is not None
            uow.orders.update(attrs.evolve(found, returns=tuple(
                attrs.evolve(r, status=ReturnStatus.REJECTED, rejection_reason="worn")
                for r in found.returns)))
            uow.commit()
        with order_store.unit_of_work() as uow:
            reports = uow.orders
            assert isinstance(reports, OrderReports)
            assert [o.id for o in reports.open_returns(limit=10)] == ["ord_04", "ord_01"]


class PricingRulesConformance:
    """What every `PricingRules` (where a `StandardPricing` keeps its configuration) must do.

    Needs a fixture ``pricing_rules``: fresh, empty rules.
    """

    def test_shipping_options_are_created_replaced_and_found_by_country(
        self, pricing_rules: PricingRules
    ) -> None:
        standard = ShippingOption(code="standard", name="Standard", price=_eur(495),
                                  countries=["DE", "AT"])
        assert pricing_rules.put_shipping_option(standard)
        assert pricing_rules.put_shipping_option(ShippingOption(
            code="anywhere", name="World", price=_eur(2500)))
        assert pricing_rules.put_shipping_option(ShippingOption(
            code="Standard", name="Another, by case", price=_eur(1), active=False))
        assert not pricing_rules.put_shipping_option(attrs.evolve(standard, name="Std",
                                                                  countries=["DE"]))
        # codes compare exactly (the order of codes differing by case is the database's)
        assert sorted(o.code for o in pricing_rules.shipping_options()) == [
            "Standard", "anywhere", "standard"]
        assert sorted(o.code for o in pricing_rules.shipping_options(country="AT")) == [
            "Standard", "anywhere"]
        assert [o.code for o in pricing_rules.shipping_options(active_only=True)] == [
            "anywhere", "standard"]
        found = pricing_rules.shipping_options(country="DE", active_only=True)
        assert found[1] == attrs.evolve(standard, name="Std", countries=["DE"])

    def test_an_order_reads_its_rules_at_once(self, pricing_rules: PricingRules) -> None:
        pricing_rules.put_shipping_option(ShippingOption(code="de", name="DE", price=_eur(495),
                                                         countries=["DE"]))
        pricing_rules.put_shipping_option(ShippingOption(code="old", name="Old", price=_eur(1),
                                                         active=False))
        pricing_rules.put_tax_rate(TaxRate(country="DE", rate_bp=1900))
        voucher = Voucher(code="Welcome10", kind=VoucherKind.PERCENT, percent_bp=1000,
                          usage_limit=3, once_per_customer=True, name="Welcome")
        pricing_rules.put_voucher(voucher)
        rules = pricing_rules.for_order(country="DE", shipping_option="old",
                                        voucher_code="WELCOME10")
        assert [o.code for o in rules.options] == ["de"]
        assert rules.chosen is not None and rules.chosen.code == "old"
        assert not rules.chosen.active
        assert rules.tax_rate == TaxRate(country="DE", rate_bp=1900)
        assert rules.voucher == voucher and voucher.code == "WELCOME10"
        elsewhere = pricing_rules.for_order(country="FR", shipping_option="nope",
                                            voucher_code="NOPE")
        assert elsewhere.options == () and elsewhere.chosen is None
        assert elsewhere.tax_rate is None and elsewhere.voucher is None

    def test_tax_rates_and_vouchers_are_replaced_in_place(
        self, pricing_rules: PricingRules
    ) -> None:
        assert pricing_rules.put_tax_rate(TaxRate(country="DE", rate_bp=1900))
        assert pricing_rules.put_tax_rate(TaxRate(country="AT", rate_bp=2000))
        assert not pricing_rules.put_tax_rate(TaxRate(country="DE", rate_bp=700))
        assert pricing_rules.tax_rates() == [TaxRate(country="AT", rate_bp=2000),
                                             TaxRate(country="DE", rate_bp=700)]
        fixed = Voucher(code="TENOFF", kind=VoucherKind.FIXED, amount=_eur(1000),
                        min_subtotal=_eur(5000))
        assert pricing_rules.put_voucher(fixed)
        assert not pricing_rules.put_voucher(attrs.evolve(fixed, active=False))
        assert pricing_rules.voucher("tenoff") == attrs.evolve(fixed, active=False)
        assert pricing_rules.voucher("missing") is None
        assert [v.code for v in pricing_rules.vouchers()] == ["TENOFF"]


class OutboxConformance:
    """What the outbox of every store (order and inventory alike) must do.

    Needs a fixture ``outbox_store``: a fresh, empty store with an outbox.
    """

    def _add(self, store: OutboxStore, events: list[DomainEvent]) -> None:
        with store.unit_of_work() as uow:
            uow.outbox.add(events)
            uow.commit()

    def test_events_come_back_whole_in_the_order_written(
        self, outbox_store: OutboxStore
    ) -> None:
        self._add(outbox_store, [_event(3), _event(1, "ord_2")])
        self._add(outbox_store, [_event(2)])
        with outbox_store.unit_of_work() as uow:
            pending = uow.outbox.pending(limit=10)
            assert [e.id for e in pending] == ["evt_0003", "evt_0001", "evt_0002"]
            assert pending[0] == _event(3)
            assert [e.id for e in uow.outbox.pending(limit=2)] == ["evt_0003", "evt_0001"]

    def test_an_events_trace_context_comes_back_with_it(
        self, outbox_store: OutboxStore
    ) -> None:
        """``DomainEvent.trace`` (W3C headers: a 55-character ``traceparent`` and up to 512
        of ``tracestate``, whose ``\\`` and ``"`` JSON doubles) is kept with the event: the
        broker and the webhooks send it on, so a consumer continues the trace."""
        state = "congo=t61rcWkgMzE,a=" + '\\"' * 122 + ",b=" + '\\"' * 120
        assert len(state) == 507
        traced = attrs.evolve(_event(1), trace={"traceparent": TRACEPARENT, "tracestate": state})
        self._add(outbox_store, [traced, _event(2)])
        with outbox_store.unit_of_work() as uow:
            first, second = uow.outbox.pending(limit=10)
        assert first == traced
        assert second.trace == {}

    def test_the_backlog_is_counted_up_to_a_bound_from_the_oldest_waiting(
        self, outbox_store: OutboxStore
    ) -> None:
        """`outbox_backlog`: the outbox's own ``backlog()`` if it has one, else its pending
        events; either way the same answer."""
        assert outbox_backlog(outbox_store) == Backlog(0, None)
        self._add(outbox_store, [_event(n) for n in range(1, 6)])
        with outbox_store.unit_of_work() as uow:
            uow.outbox.mark_published(["evt_0001", "evt_0004"], at=T0)
            uow.commit()
        assert outbox_backlog(outbox_store) == Backlog(3, _event(2).occurred_at)
        assert outbox_backlog(outbox_store, most=2) == Backlog(2, _event(2).occurred_at)
        with outbox_store.unit_of_work() as uow:
            uow.outbox.mark_published(["evt_0002", "evt_0003", "evt_0005"], at=T0)
            uow.commit()
        assert outbox_backlog(outbox_store) == Backlog(0, None)

    def test_a_taken_event_id_is_a_conflict(self, outbox_store: OutboxStore) -> None:
        self._add(outbox_store, [_event(1)])
        with outbox_store.unit_of_work() as uow, \
                _raises(Conflict, "outbox.add() of an event whose id is taken"):
            uow.outbox.add([_event(1)])
        with outbox_store.unit_of_work() as uow:
            waiting = [e.id for e in uow.outbox.pending(limit=10)]
        assert waiting == ["evt_0001"], f"pending after the refused add: {waiting}"

    def test_marking_unknown_or_published_events_leaves_them_alone(
        self, outbox_store: OutboxStore
    ) -> None:
        """``mark_published`` skips ids it does not know, and keeps the first time an event
        was published (a relay marking again after a lost answer moves nothing)."""
        self._add(outbox_store, [_event(1), _event(2)])
        first, later = T0 + timedelta(hours=1), T0 + timedelta(hours=5)
        with outbox_store.unit_of_work() as uow:
            uow.outbox.mark_published(["evt_0001"], at=first)
            uow.commit()
        with outbox_store.unit_of_work() as uow, \
                _succeeds("mark_published() of an unknown id and a published one"):
            uow.outbox.mark_published(["evt_0001", "evt_none"], at=later)
            uow.commit()
        with outbox_store.unit_of_work() as uow:
            waiting = [e.id for e in uow.outbox.pending(limit=10)]
            purged = uow.outbox.purge(published_before=first + timedelta(minutes=1), limit=10)
            uow.commit()
        assert waiting == ["evt_0002"], f"pending: {waiting}"
        assert purged == 1, ("an event published at T0+1h and marked again at T0+5h was not "
                             "purged as published before T0+1h01: its first time was moved")

    def test_events_are_written_only_with_their_transaction(
        self, outbox_store: OutboxStore
    ) -> None:
        with outbox_store.unit_of_work() as uow:
            uow.outbox.add([_event(1)])  # rolled back: never committed
        with outbox_store.unit_of_work() as uow:
            assert uow.outbox.pending(limit=10) == []

    def test_published_events_leave_the_queue_and_can_be_purged(
        self, outbox_store: OutboxStore
    ) -> None:
        self._add(outbox_store, [_event(n) for n in range(1, 5)])
        with outbox_store.unit_of_work() as uow:
            uow.outbox.mark_published(["evt_0001", "evt_0003"], at=T0)
            uow.commit()
        with outbox_store.unit_of_work() as uow:
            assert [e.id for e in uow.outbox.pending(limit=10)] == ["evt_0002", "evt_0004"]
            assert uow.outbox.purge(published_before=T0, limit=10) == 0
            assert uow.outbox.purge(published_before=T0 + timedelta(seconds=1), limit=1) == 1
            assert uow.outbox.purge(published_before=T0 + timedelta(seconds=1), limit=9) == 1
            uow.commit()
        with outbox_store.unit_of_work() as uow:
            assert [e.id for e in uow.outbox.pending(limit=10)] == ["evt_0002", "evt_0004"]

    def test_a_relay_with_a_retention_purges_old_published_events(
        self, outbox_store: OutboxStore
    ) -> None:
        self._add(outbox_store, [_event(n) for n in range(1, 4)])
        clock = [T0]
        relay = OutboxRelay(outbox_store, InProcessPublisher(), name="test",
                            clock=lambda: clock[0], retention=timedelta(days=1))
        assert relay.drain() == 3
        with outbox_store.unit_of_work() as uow:
            assert uow.outbox.purge(published_before=T0, limit=10) == 0  # nothing is older
        self._add(outbox_store, [_event(4)])
        clock[0] = T0 + timedelta(days=2)
        assert relay.drain() == 1  # the idle run after it purged events 1 to 3
        with outbox_store.unit_of_work() as uow:
            assert uow.outbox.purge(published_before=clock[0] + timedelta(seconds=1),
                                    limit=10) == 1  # only event 4 was left

    def test_one_relay_holds_the_lease_until_it_lapses(self, outbox_store: OutboxStore) -> None:
        later = T0 + timedelta(seconds=30)

        def claim(owner: str, now: datetime) -> bool:
            with outbox_store.unit_of_work() as uow:
                held = uow.outbox.claim("orders", owner=owner, now=now,
                                        until=now + timedelta(seconds=30))
                uow.commit()
            return held

        assert claim("a", T0)
        assert not claim("b", T0 + timedelta(seconds=1))
        assert claim("a", T0 + timedelta(seconds=2))  # renewed until T0 + 32 s
        assert not claim("b", later)
        assert claim("b", later + timedelta(seconds=2))  # a's lease lapsed
        assert not claim("a", later + timedelta(seconds=3))
        with outbox_store.unit_of_work() as uow:  # another relay name is another lease
            assert uow.outbox.claim("inventory", owner="a", now=T0, until=later)

    def test_the_relay_publishes_everything_once_in_order(
        self, outbox_store: OutboxStore
    ) -> None:
        self._add(outbox_store, [_event(n, f"ord_{n % 3}") for n in range(1, 26)])
        received: list[DomainEvent] = []
        publisher = InProcessPublisher()
        publisher.subscribe("order.*", received.append)
        relay = OutboxRelay(outbox_store, publisher, name="test", batch_size=7,
                            clock=lambda: T0)
        assert relay.drain() == 25
        assert [e.sequence for e in received] == list(range(1, 26))
        assert relay.drain() == 0

    def test_an_idle_relay_takes_no_lease(self, outbox_store: OutboxStore) -> None:
        idle = OutboxRelay(outbox_store, InProcessPublisher(), name="test", owner="idle",
                           clock=lambda: T0)
        assert idle.run_once() == 0  # nothing to publish: nothing written
        self._add(outbox_store, [_event(1)])
        busy = OutboxRelay(outbox_store, InProcessPublisher(), name="test", owner="busy",
                           clock=lambda: T0 + timedelta(seconds=1))
        assert busy.run_once() == 1  # the lease was free, though "idle" ran a second ago

    def test_a_failed_publish_is_sent_again_by_the_next_relay(
        self, outbox_store: OutboxStore
    ) -> None:
        self._add(outbox_store, [_event(n) for n in range(1, 6)])
        received: list[str] = []

        def flaky(event: DomainEvent) -> None:
            received.append(event.id)
            if event.id == "evt_0003" and received.count("evt_0003") == 1:
                raise RuntimeError("broker went away")

        publisher = InProcessPublisher()
        publisher.subscribe("*", flaky)
        first = OutboxRelay(outbox_store, publisher, name="test", clock=lambda: T0,
                            owner="first")
        with _raises(EventPublishFailed):
            first.run_once()
        # the lease is first's until it lapses; then another relay takes over
        second = OutboxRelay(outbox_store, publisher, name="test", owner="second",
                             clock=lambda: T0 + timedelta(minutes=1))
        assert second.drain() == 5
        assert received == ["evt_0001", "evt_0002", "evt_0003",
                            "evt_0001", "evt_0002", "evt_0003", "evt_0004", "evt_0005"]


    def test_a_relay_whose_lease_lapsed_stops_publishing_and_marks_nothing(
        self, outbox_store: OutboxStore
    ) -> None:
        """A slow broker held the first relay past its lease; another took over. The first
        must not go on publishing (the two would interleave) nor mark events published
        that the other now owns."""
        self._add(outbox_store, [_event(n) for n in range(1, 26)])
        now = [T0]
        first_got: list[str] = []
        second_got: list[str] = []
        second_publisher = InProcessPublisher()
        second_publisher.subscribe("*", lambda e: second_got.append(e.id))
        second = OutboxRelay(outbox_store, second_publisher, name="test", owner="second",
                             clock=lambda: now[0], lease=timedelta(seconds=30))

        def slow(event: DomainEvent) -> None:
            first_got.append(event.id)
            if len(first_got) == 1:  # the broker stalls past the lease; second takes over
                now[0] = T0 + timedelta(seconds=31)
                assert second.run_once() == 25

        first_publisher = InProcessPublisher()
        first_publisher.subscribe("*", slow)
        first = OutboxRelay(outbox_store, first_publisher, name="test", owner="first",
                            clock=lambda: now[0], lease=timedelta(seconds=30), batch_size=25)
        assert first.run_once() == 0
        assert len(first_got) < 25  # it stopped after the chunk it was in
        assert second_got == [f"evt_{n:04d}" for n in range(1, 26)]
        with outbox_store.unit_of_work() as uow:
            assert uow.outbox.pending(limit=100) == []  # marked by second, whole


class PaymentGatewayConformance:
    """What every `PaymentGateway` must do.

    Needs fixtures ``payment_gateway`` (a gateway) and ``gateway_tokens``: a dict with an
    ``"approve"`` and a ``"decline"`` token for it.
    """

    def _authorize(
        self, gateway: PaymentGateway, token: str, key: str, amount: int = 5000
    ) -> Callable[[], object]:
        return lambda: gateway.authorize(token=token, amount=_eur(amount), idempotency_key=key,
                                         reference=f"ref-{key}")

    def test_an_authorization_is_idempotent_by_key(
        self, payment_gateway: PaymentGateway, gateway_tokens: dict[str, str]
    ) -> None:
        first = self._authorize(payment_gateway, gateway_tokens["approve"], "k-auth")()
        again = self._authorize(payment_gateway, gateway_tokens["approve"], "k-auth")()
        assert first == again
        with _raises(IdempotencyKeyReused):
            self._authorize(payment_gateway, gateway_tokens["approve"], "k-auth", 1)()
        found = payment_gateway.find_authorization(idempotency_key="k-auth")
        assert found == first
        assert payment_gateway.find_authorization(idempotency_key="k-none") is None

    def test_a_decline_is_permanent_and_replayed(
        self, payment_gateway: PaymentGateway, gateway_tokens: dict[str, str]
    ) -> None:
        for _ in range(2):
            with _raises(PaymentDeclined):
                self._authorize(payment_gateway, gateway_tokens["decline"], "k-decl")()
        assert payment_gateway.find_authorization(idempotency_key="k-decl") is None

    def test_capture_then_partial_refunds_up_to_the_capture(
        self, payment_gateway: PaymentGateway, gateway_tokens: dict[str, str]
    ) -> None:
        auth = payment_gateway.authorize(token=gateway_tokens["approve"], amount=_eur(5000),
                                         idempotency_key="k-cap", reference="r")
        payment_gateway.capture(authorization_id=auth.id, amount=_eur(5000),
                                idempotency_key="k-cap:c")
        payment_gateway.capture(authorization_id=auth.id, amount=_eur(5000),
                                idempotency_key="k-cap:c")  # a retry is not a second capture
        first = payment_gateway.refund(authorization_id=auth.id, amount=_eur(3000),
                                       idempotency_key="k-cap:r1")
        assert first == payment_gateway.refund(authorization_id=auth.id, amount=_eur(3000),
                                               idempotency_key="k-cap:r1")
        payment_gateway.refund(authorization_id=auth.id, amount=_eur(2000),
                               idempotency_key="k-cap:r2")
        with _raises(PaymentDeclined):
            payment_gateway.refund(authorization_id=auth.id, amount=_eur(1),
                                   idempotency_key="k-cap:r3")

    def test_a_voided_authorization_is_gone(
        self, payment_gateway: PaymentGateway, gateway_tokens: dict[str, str]
    ) -> None:
        auth = payment_gateway.authorize(token=gateway_tokens["approve"], amount=_eur(100),
                                         idempotency_key="k-void", reference="r")
        payment_gateway.void(authorization_id=auth.id, idempotency_key="k-void:v")
        payment_gateway.void(authorization_id=auth.id, idempotency_key="k-void:v")
        assert payment_gateway.find_authorization(idempotency_key="k-void") is None
        with _raises(PaymentDeclined):
            payment_gateway.capture(authorization_id=auth.id, amount=_eur(100),
                                    idempotency_key="k-void:c")

    def test_a_captured_payment_refuses_a_void_as_captured(
        self, payment_gateway: PaymentGateway, gateway_tokens: dict[str, str]
    ) -> None:
        auth = payment_gateway.authorize(token=gateway_tokens["approve"], amount=_eur(700),
                                         idempotency_key="k-capv", reference="r")
        payment_gateway.capture(authorization_id=auth.id, amount=_eur(700),
                                idempotency_key="k-capv:c")
        # the same capture under another key: the outcome asked for, not a second capture
        payment_gateway.capture(authorization_id=auth.id, amount=_eur(700),
                                idempotency_key="k-capv:c2")
        refused: PaymentDeclined | None = None
        try:
            payment_gateway.void(authorization_id=auth.id, idempotency_key="k-capv:v")
        except PaymentDeclined as exc:
            refused = exc
        assert refused is not None, "a captured payment was voided"
        assert refused.decline_code == ALREADY_CAPTURED, refused.decline_code
        assert refused.captured in (None, 700)  # how much, if the provider says
        payment_gateway.refund(authorization_id=auth.id, amount=_eur(700),
                               idempotency_key="k-capv:r1")  # all of it, once
        with _raises(PaymentDeclined):
            payment_gateway.refund(authorization_id=auth.id, amount=_eur(1),
                                   idempotency_key="k-capv:r2")

    def test_refunds_are_listed_with_their_keys_where_the_gateway_can(
        self, payment_gateway: PaymentGateway, gateway_tokens: dict[str, str]
    ) -> None:
        if not isinstance(payment_gateway, RefundLookup):
            return  # an optional capability
        auth = payment_gateway.authorize(token=gateway_tokens["approve"], amount=_eur(900),
                                         idempotency_key="k-list", reference="r")
        payment_gateway.capture(authorization_id=auth.id, amount=_eur(900),
                                idempotency_key="k-list:c")
        assert list(payment_gateway.list_refunds(authorization_id=auth.id)) == []
        first = payment_gateway.refund(authorization_id=auth.id, amount=_eur(300),
                                       idempotency_key="k-list:r1")
        second = payment_gateway.refund(authorization_id=auth.id, amount=_eur(200),
                                        idempotency_key="k-list:r2")
        assert list(payment_gateway.list_refunds(authorization_id=auth.id)) == [
            ProviderRefund(first, _eur(300), "k-list:r1"),
            ProviderRefund(second, _eur(200), "k-list:r2")]

    # -- the rules adapter authors had to guess (issue 19) ----------------------------------

    def test_a_refund_above_the_capture_is_declined_and_refunds_nothing(
        self, payment_gateway: PaymentGateway, gateway_tokens: dict[str, str]
    ) -> None:
        """More than was captured (here a partial capture) is `PaymentDeclined` from the
        gateway (`RefundExceedsCaptured` is the library's own check, before it asks);
        nothing is refunded, so the whole capture still is."""
        auth = payment_gateway.authorize(token=gateway_tokens["approve"], amount=_eur(1000),
                                         idempotency_key="k-over", reference="r")
        payment_gateway.capture(authorization_id=auth.id, amount=_eur(600),
                                idempotency_key="k-over:c")
        with _raises(PaymentDeclined, "a refund of 601 of a capture of 600"):
            payment_gateway.refund(authorization_id=auth.id, amount=_eur(601),
                                   idempotency_key="k-over:r1")
        refund_id = payment_gateway.refund(authorization_id=auth.id, amount=_eur(600),
                                           idempotency_key="k-over:r2")
        assert isinstance(refund_id, str) and refund_id, \
            f"the refund of the whole capture gave {refund_id!r}, want the provider's id"

    def test_an_unknown_authorization_is_declined(
        self, payment_gateway: PaymentGateway, gateway_tokens: dict[str, str]
    ) -> None:
        """Capture, void or refund of an authorization id the provider never gave:
        `PaymentDeclined` (permanent), not `PaymentUnavailable`."""
        unknown = "no-such-authorization-0000"
        with _raises(PaymentDeclined, f"capture of the unknown {unknown!r}"):
            payment_gateway.capture(authorization_id=unknown, amount=_eur(100),
                                    idempotency_key="k-unknown:c")
        with _raises(PaymentDeclined, f"void of the unknown {unknown!r}"):
            payment_gateway.void(authorization_id=unknown, idempotency_key="k-unknown:v")
        with _raises(PaymentDeclined, f"refund of the unknown {unknown!r}"):
            payment_gateway.refund(authorization_id=unknown, amount=_eur(100),
                                   idempotency_key="k-unknown:r")

    def test_a_void_of_a_voided_hold_under_another_key_succeeds(
        self, payment_gateway: PaymentGateway, gateway_tokens: dict[str, str]
    ) -> None:
        """The outcome asked for: no error (not only a replay of the same key)."""
        auth = payment_gateway.authorize(token=gateway_tokens["approve"], amount=_eur(100),
                                         idempotency_key="k-void2", reference="r")
        payment_gateway.void(authorization_id=auth.id, idempotency_key="k-void2:v1")
        with _succeeds("a void of a voided hold under another key"):
            payment_gateway.void(authorization_id=auth.id, idempotency_key="k-void2:v2")

    def test_a_refund_of_a_hold_never_captured_is_declined(
        self, payment_gateway: PaymentGateway, gateway_tokens: dict[str, str]
    ) -> None:
        auth = payment_gateway.authorize(token=gateway_tokens["approve"], amount=_eur(700),
                                         idempotency_key="k-uncaptured", reference="r")
        with _raises(PaymentDeclined, "refund() of a hold nothing was captured from"):
            payment_gateway.refund(authorization_id=auth.id, amount=_eur(100),
                                   idempotency_key="k-uncaptured:r")
        still = payment_gateway.find_authorization(idempotency_key="k-uncaptured")
        assert still is not None and still.id == auth.id, \
            f"after the refused refund the hold is {still}, want it still live"

    def test_a_captured_hold_is_no_longer_found_as_an_authorization(
        self, payment_gateway: PaymentGateway, gateway_tokens: dict[str, str]
    ) -> None:
        """``find_authorization`` finds the *live* hold: once captured (as once voided) it
        answers ``None``."""
        auth = payment_gateway.authorize(token=gateway_tokens["approve"], amount=_eur(800),
                                         idempotency_key="k-found", reference="r")
        found = payment_gateway.find_authorization(idempotency_key="k-found")
        assert found == auth, f"find_authorization of a live hold gave {found}, want {auth}"
        payment_gateway.capture(authorization_id=auth.id, amount=_eur(800),
                                idempotency_key="k-found:c")
        found = payment_gateway.find_authorization(idempotency_key="k-found")
        assert found is None, f"find_authorization of a captured hold gave {found}, want None"


def _endpoint(endpoint_id: str = "erp", **changes: Any) -> WebhookEndpoint:
    return attrs.evolve(WebhookEndpoint(
        id=endpoint_id, url="https://erp.example/hooks?x=1", secret="whsec_0123456789abcdef",
        events=("order.confirmed", "return.*"), created_at=T0, updated_at=T0), **changes)


def _delivery(n: int, endpoint: str = "erp", aggregate: str = "order:ord_1",
              **changes: Any) -> Delivery:
    return attrs.evolve(Delivery(
        id=f"whd_{endpoint}_{n:03d}", endpoint_id=endpoint, event_id=f"evt_{n:03d}",
        event_type="order.confirmed", aggregate=aggregate,
        body=f'{{"id":"evt_{n:03d}","data":{{"text":"Grüße"}}}}', created_at=T0,
        next_attempt_at=T0), **changes)


class WebhookStoreConformance:
    """What every `WebhookStore` (outbound webhooks' endpoints and queues) must do.

    Needs a fixture ``webhook_store``: a fresh, empty store.
    """

    def test_endpoints_are_created_replaced_and_listed(
        self, webhook_store: WebhookStore
    ) -> None:
        assert webhook_store.put_endpoint(_endpoint())
        assert webhook_store.put_endpoint(_endpoint("ERP", active=False))  # ids are exact
        later = T0 + timedelta(hours=1)
        changed = _endpoint(url="http://127.0.0.1:9/h", secret="s" * 40, events=("*",),
                            created_at=later, updated_at=later)
        assert not webhook_store.put_endpoint(changed)
        assert webhook_store.get_endpoint("erp") == attrs.evolve(changed, created_at=T0)
        assert webhook_store.get_endpoint("missing") is None
        assert [e.id for e in webhook_store.endpoints()] == sorted(["ERP", "erp"])
        found = webhook_store.get_endpoint("ERP")
        assert found is not None and not found.active
        assert found.events == ("order.confirmed", "return.*")

    def test_a_deliverys_trace_context_comes_back_with_it(
        self, webhook_store: WebhookStore
    ) -> None:
        """``Delivery.trace`` (the event's W3C headers) is kept: every attempt sends it."""
        webhook_store.put_endpoint(_endpoint())
        traced = _delivery(1, trace={"traceparent": TRACEPARENT, "tracestate": "congo=t61r"})
        assert webhook_store.enqueue([traced, _delivery(2)]) == 2
        found = webhook_store.get_delivery(traced.id)
        assert found is not None and found.trace == traced.trace
        plain = webhook_store.get_delivery(_delivery(2).id)
        assert plain is not None and plain.trace == {}
        claimed = webhook_store.claim_due(now=T0, owner="relay-1", until=T0 + timedelta(
            minutes=1), limit=10, per_endpoint=10)
        assert [d.trace for d in claimed] == [traced.trace]  # the first of its aggregate

    def test_an_event_is_queued_once_per_endpoint_in_the_order_given(
        self, webhook_store: WebhookStore
    ) -> None:
        webhook_store.put_endpoint(_endpoint())
        webhook_store.put_endpoint(_endpoint("crm"))
        assert webhook_store.enqueue([_delivery(1), _delivery(2), _delivery(1, "crm")]) == 3
        again = [_delivery(2, id="whd_other"), _delivery(3)]
        assert webhook_store.enqueue(again) == 1  # evt_002 is queued for erp already
        log = webhook_store.deliveries("erp", before=None, limit=10)
        assert [d.event_id for d in log] == ["evt_003", "evt_002", "evt_001"]
        assert log[0].position > log[1].position > log[2].position
        assert log[2] == attrs.evolve(_delivery(1), position=log[2].position)
        assert webhook_store.get_delivery("whd_other") is None
        assert webhook_store.get_delivery("whd_crm_001") is not None
        older = webhook_store.deliveries("erp", before=log[0].position, limit=1)
        assert [d.event_id for d in older] == ["evt_002"]

    def test_only_the_first_pending_delivery_of_an_aggregate_is_due(
        self, webhook_store: WebhookStore
    ) -> None:
        webhook_store.put_endpoint(_endpoint())
        webhook_store.put_endpoint(_endpoint("paused", active=False))
        later = T0 + timedelta(minutes=5)
        webhook_store.enqueue([
            _delivery(1), _delivery(2), _delivery(3, aggregate="order:ord_2",
                                                   next_attempt_at=later),
            _delivery(4, aggregate="order:ord_2"), _delivery(5, aggregate="stock:MUG"),
            _delivery(6, "paused", aggregate="order:ord_9")])
        due = webhook_store.claim_due(now=T0, owner="a", until=T0 + timedelta(minutes=1),
                                      limit=10, per_endpoint=10)
        # ord_1's first; not ord_2's (its first waits for a retry); the paused endpoint's none
        assert [d.event_id for d in due] == ["evt_001", "evt_005"]
        # leased: nobody else gets them until the lease lapses
        assert webhook_store.claim_due(now=T0, owner="b", until=T0 + timedelta(minutes=1),
                                       limit=10, per_endpoint=10) == []
        lapsed = T0 + timedelta(minutes=2)
        one = webhook_store.claim_due(now=lapsed, owner="b", until=later, limit=10,
                                      per_endpoint=1)
        assert [d.event_id for d in one] == ["evt_001"]
        rest = webhook_store.claim_due(now=lapsed, owner="b", until=later, limit=1,
                                       per_endpoint=10)
        assert [d.event_id for d in rest] == ["evt_005"]
        assert [d.event_id for d in webhook_store.claim_due(
            now=later, owner="c", until=later + timedelta(minutes=1), limit=10,
            per_endpoint=10)] == ["evt_001", "evt_003", "evt_005"]

    def test_a_finished_delivery_lets_the_next_of_its_aggregate_go(
        self, webhook_store: WebhookStore
    ) -> None:
        webhook_store.put_endpoint(_endpoint())
        webhook_store.enqueue([_delivery(1), _delivery(2), _delivery(3)])
        until = T0 + timedelta(minutes=1)
        (first,) = webhook_store.claim_due(now=T0, owner="a", until=until, limit=10,
                                           per_endpoint=10)
        done = attrs.evolve(first, status=DeliveryStatus.DELIVERED, attempts=1,
                            last_attempt_at=T0, delivered_at=T0, response_status=204)
        assert not webhook_store.finish(done, owner="b")  # not b's lease: nothing written
        assert webhook_store.get_delivery(first.id) == first
        assert webhook_store.finish(done, owner="a")
        assert webhook_store.get_delivery(first.id) == done
        (second,) = webhook_store.claim_due(now=T0, owner="a", until=until, limit=10,
                                            per_endpoint=10)
        assert second.event_id == "evt_002"
        # failed for good (a dead letter): the next one goes
        dead = attrs.evolve(second, status=DeliveryStatus.FAILED, attempts=10,
                            last_attempt_at=T0, response_status=None,
                            last_error="ConnectionRefusedError: [Errno 111] refused")
        assert webhook_store.finish(dead, owner="a")
        (third,) = webhook_store.claim_due(now=T0, owner="a", until=until, limit=10,
                                           per_endpoint=10)
        assert third.event_id == "evt_003"
        webhook_store.release([third.id], owner="b")  # not b's: still leased
        assert webhook_store.claim_due(now=T0, owner="c", until=until, limit=10,
                                       per_endpoint=10) == []
        webhook_store.release([third.id], owner="a")
        assert [d.id for d in webhook_store.claim_due(
            now=T0, owner="c", until=until, limit=10, per_endpoint=10)] == [third.id]
        assert webhook_store.get_delivery(second.id) == dead

    def test_failed_deliveries_are_replayed_from_zero(self, webhook_store: WebhookStore) -> None:
        webhook_store.put_endpoint(_endpoint())
        webhook_store.put_endpoint(_endpoint("crm"))
        webhook_store.enqueue([_delivery(1), _delivery(2, aggregate="order:ord_2"),
                               _delivery(3, "crm")])
        until = T0 + timedelta(minutes=1)
        for claimed in webhook_store.claim_due(now=T0, owner="a", until=until, limit=10,
                                               per_endpoint=10):
            assert webhook_store.finish(attrs.evolve(
                claimed, status=DeliveryStatus.FAILED, attempts=3, last_attempt_at=T0,
                response_status=500, last_error="answered 500"), owner="a")
        later = T0 + timedelta(hours=1)
        assert webhook_store.replay("erp", delivery_ids=["whd_erp_002", "whd_crm_003"],
                                    now=later) == 1
        assert webhook_store.replay("erp", delivery_ids=[], now=later) == 0
        replayed = webhook_store.get_delivery("whd_erp_002")
        assert replayed is not None
        assert (replayed.status, replayed.attempts, replayed.next_attempt_at) == (
            DeliveryStatus.PENDING, 0, later)
        assert replayed.last_error == "answered 500"  # the log keeps what happened
        assert webhook_store.replay("erp", delivery_ids=None, now=later) == 1
        assert webhook_store.replay("erp", delivery_ids=None, now=later) == 0
        crm = webhook_store.get_delivery("whd_crm_003")
        assert crm is not None and crm.status is DeliveryStatus.FAILED

    def test_purge_deletes_only_what_was_delivered_before(
        self, webhook_store: WebhookStore
    ) -> None:
        webhook_store.put_endpoint(_endpoint())
        webhook_store.enqueue([_delivery(n, aggregate=f"order:{n}") for n in range(1, 4)])
        until = T0 + timedelta(minutes=1)
        first, second, third = webhook_store.claim_due(now=T0, owner="a", until=until,
                                                       limit=10, per_endpoint=10)
        for claimed, at in ((first, T0), (second, T0 + timedelta(days=2))):
            webhook_store.finish(attrs.evolve(claimed, status=DeliveryStatus.DELIVERED,
                                              attempts=1, delivered_at=at), owner="a")
        assert webhook_store.purge(delivered_before=T0 + timedelta(days=1), limit=10) == 1
        assert [d.id for d in webhook_store.deliveries("erp", before=None, limit=10)] == [
            third.id, second.id]

    def test_a_backlog_of_one_endpoint_never_hides_another_s(
        self, webhook_store: WebhookStore
    ) -> None:
        webhook_store.put_endpoint(_endpoint("down"))
        webhook_store.put_endpoint(_endpoint("up"))
        webhook_store.enqueue([_delivery(n, "down", aggregate=f"order:{n}") for n in range(60)])
        webhook_store.enqueue([_delivery(99, "up")])
        until = T0 + timedelta(minutes=1)
        claimed = webhook_store.claim_due(now=T0, owner="a", until=until, limit=10,
                                          per_endpoint=5)
        assert sorted(d.endpoint_id for d in claimed) == ["down"] * 5 + ["up"]
        assert [d.event_id for d in claimed if d.endpoint_id == "down"] == [
            f"evt_{n:03d}" for n in range(5)]  # in its queue's order
        only = webhook_store.claim_due(now=T0, owner="a", until=until, limit=10,
                                       per_endpoint=3, endpoint_id="down")
        assert [d.event_id for d in only] == ["evt_005", "evt_006", "evt_007"]
        assert webhook_store.claim_due(now=T0, owner="a", until=until, limit=10,
                                       per_endpoint=3, endpoint_id="up") == []  # leased
        assert webhook_store.claim_due(now=T0, owner="a", until=until, limit=10,
                                       per_endpoint=3, endpoint_id="nope") == []

    def test_a_delivery_attempted_meanwhile_is_not_claimed_as_it_was(
        self, webhook_store: WebhookStore
    ) -> None:
        """Process B attempts a delivery and puts it back with a backoff; process A, which
        read it before, does not get to send it again at once."""
        webhook_store.put_endpoint(_endpoint())
        webhook_store.enqueue([_delivery(1)])
        until = T0 + timedelta(minutes=1)
        (taken,) = webhook_store.claim_due(now=T0, owner="b", until=until, limit=10,
                                           per_endpoint=10)
        later = T0 + timedelta(minutes=10)
        assert webhook_store.finish(attrs.evolve(
            taken, attempts=1, last_attempt_at=T0, response_status=500,
            last_error="answered 500", next_attempt_at=later), owner="b")
        assert webhook_store.claim_due(now=T0, owner="a", until=until, limit=10,
                                       per_endpoint=10) == []
        (again,) = webhook_store.claim_due(now=later, owner="a",
                                           until=later + timedelta(minutes=1), limit=10,
                                           per_endpoint=10)
        assert again.attempts == 1

    def test_racing_claimers_never_take_the_same_delivery(
        self, webhook_store: WebhookStore
    ) -> None:
        webhook_store.put_endpoint(_endpoint())
        webhook_store.enqueue([_delivery(n, aggregate=f"order:{n}") for n in range(40)])
        taken: list[str] = []

        def claim(n: int) -> None:
            empty = 0
            for _ in range(100):  # 40 deliveries: a claimer that never runs dry fails
                if empty == 3:  # nothing left for it (three empty answers in a row)
                    return
                found = webhook_store.claim_due(now=T0, owner=f"w{n}",
                                                until=T0 + timedelta(minutes=1), limit=8,
                                                per_endpoint=8)
                taken.extend(d.id for d in found)
                empty = 0 if found else empty + 1
            raise AssertionError(f"claimer w{n} was still handed deliveries after 100 "
                                 "claims: claim_due hands back what it leased already")

        _race(claim)
        assert len(taken) == len(set(taken)) == 40, \
            f"{len(taken)} deliveries taken, {len(set(taken))} different: want 40 once each"

"""Every rule the conformance suites pin for adapter authors (issue 19) catches an adapter
that breaks it.

Each case is a deliberately broken variant of the in-memory store (one repository method
replaced) or of the sandbox gateway (one call changed), and the suite method that pins the
rule: that method passes on the real in-memory store or sandbox, and fails with an
`AssertionError` (saying what it found) on the broken one. The suites are called directly,
as plain classes, the way `tests/conformance/` runs them through pytest.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import attrs
import pytest

from commerce_core.errors import (
    NotFound,
    PaymentDeclined,
    PaymentUnavailable,
    RefundExceedsCaptured,
    StoreError,
)
from commerce_core.events import DomainEvent
from commerce_core.inventory.model import (
    Product,
    Reservation,
    StockLevel,
    StockMovement,
    Warehouse,
)
from commerce_core.money import Money
from commerce_core.orders.model import IdempotencyRecord, Order
from commerce_core.payments.model import Payment
from commerce_core.payments.ports import GatewayAuthorization
from commerce_core.testing import SandboxPaymentGateway
from commerce_core.testing.conformance import (
    InventoryStoreConformance,
    OrderStoreConformance,
    OutboxConformance,
    PaymentGatewayConformance,
    WebhookStoreConformance,
)
from commerce_core.testing.memory import (
    InMemoryInventoryStore,
    InMemoryOrderStore,
    _Idempotency,
    _InventoryUnitOfWork,
    _Movements,
    _Orders,
    _OrderUnitOfWork,
    _Outbox,
    _Payments,
    _Products,
    _Reservations,
    _Stock,
    _Warehouses,
)
from commerce_core.webhooks import InMemoryWebhookStore
from commerce_core.webhooks.model import Delivery

EVERYTHING = 1_000_000  # a limit no test reaches

# -- broken inventory repositories ---------------------------------------------------------


class LowByAvailable(_Stock):
    """``low()`` ordered by how little is left, then by SKU (the rule is: by SKU)."""

    def low(self, threshold: int, *, limit: int) -> Sequence[tuple[str, int]]:
        rows = super().low(threshold, limit=EVERYTHING)
        return sorted(rows, key=lambda row: (row[1], row[0]))[:limit]


class LowWithoutLimit(_Stock):
    """``low()`` that ignores ``limit``."""

    def low(self, threshold: int, *, limit: int) -> Sequence[tuple[str, int]]:
        return super().low(threshold, limit=EVERYTHING)


class DuplicateWarehouseAccepted(_Warehouses):
    """``add()`` of a taken code overwrites the warehouse instead of raising `Conflict`."""

    def add(self, warehouse: Warehouse) -> None:
        self.tx.put("warehouses", warehouse.code, warehouse)


class AddManyOneByOne(_Products):
    """``add_many()`` that adds the products before the taken one, then raises `Conflict`:
    a caller that catches it and commits keeps them."""

    def add_many(self, items: Sequence[Product]) -> None:
        for product in items:
            self.add(product)


class UpdateOfMissingProductRaises(_Products):
    """``update()`` of a missing SKU raises `NotFound` (the rule: it raises nothing)."""

    def update(self, product: Product) -> None:
        if self.get(product.sku) is None:
            raise NotFound("product", product.sku)
        super().update(product)


class UpdateOfMissingProductCreatesIt(_Products):
    """``update()`` of a missing SKU inserts it (an upsert; the rule: nothing is written)."""

    def update(self, product: Product) -> None:
        self.tx.put("products", product.sku, product)


class ProductUpdateWritesNothing(_Products):
    """``update()`` returns without writing (the rule: the last write is kept)."""

    def update(self, product: Product) -> None:
        return None


class LevelsWithEmptyRows(_Stock):
    """``levels()`` answers a zero level for a SKU without any (an outer join's row)."""

    def levels(self, skus: Any) -> Sequence[StockLevel]:
        found = list(super().levels(skus))
        have = {lv.sku for lv in found}
        return sorted(found + [StockLevel(sku, "BER", on_hand=0) for sku in skus
                               if sku not in have], key=lambda lv: (lv.sku, lv.warehouse))


class LevelUpdateInsertsAMissingOne(_Stock):
    """``update()`` of a level that does not exist inserts it (an upsert)."""

    def update(self, level: StockLevel) -> StockLevel:
        if self.tx.get("stock", (level.sku, level.warehouse)) is None:
            self.tx.put("stock", (level.sku, level.warehouse), level)
            return level
        return super().update(level)


class DuplicateStockLevelAccepted(_Stock):
    """``add()`` of an existing (sku, warehouse) overwrites the level."""

    def add(self, level: StockLevel) -> None:
        self.tx.put("stock", (level.sku, level.warehouse), level)


class DuplicateReservationAccepted(_Reservations):
    """``add()`` of a taken reservation id overwrites the reservation."""

    def add(self, reservation: Reservation) -> None:
        self.tx.put("reservations", reservation.id, reservation)


class MovementsOldestFirst(_Movements):
    """``list()`` of a SKU's ledger oldest first (the rule: newest first)."""

    def list(self, sku: str, *, limit: int) -> Sequence[StockMovement]:
        return [m for m in self._all() if m.sku == sku][:limit]


class MovementsWithoutLimit(_Movements):
    """``list()`` of a SKU's ledger that ignores ``limit``."""

    def list(self, sku: str, *, limit: int) -> Sequence[StockMovement]:
        return super().list(sku, limit=EVERYTHING)


class ExpiredById(_Reservations):
    """``expired()`` ordered by id alone (the rule: by ``expires_at``, then id)."""

    def expired(self, now: datetime, *, limit: int) -> Sequence[str]:
        return sorted(super().expired(now, limit=EVERYTHING))[:limit]


class ExpiredWithoutLimit(_Reservations):
    """``expired()`` that ignores ``limit``."""

    def expired(self, now: datetime, *, limit: int) -> Sequence[str]:
        return super().expired(now, limit=EVERYTHING)


class LiveInOrderAdded(_Reservations):
    """``live()`` in the order the reservations were added (the rule: by id)."""

    def live(self) -> Sequence[Reservation]:
        return [r for r in self.tx.values("reservations") if r.live]


# -- broken order repositories -------------------------------------------------------------


class DuplicateOrderAccepted(_Orders):
    """``add()`` of a taken order id overwrites the order."""

    def add(self, order: Order) -> None:
        self.tx.put("orders", order.id, order)


class UnfinishedTiesInOrderAdded(_Orders):
    """``unfinished()`` ordered by the time last touched only: ties in the order added (the
    rule: ties by id)."""

    def unfinished(self, *, updated_before: datetime, limit: int) -> Sequence[Order]:
        found = super().unfinished(updated_before=updated_before, limit=EVERYTHING)
        added = {o.id: n for n, o in enumerate(self.tx.values("orders"))}
        return sorted(found, key=lambda o: (o.updated_at, added[o.id]))[:limit]


class DuplicatePaymentAccepted(_Payments):
    """``add()`` of a taken payment id overwrites the payment."""

    def add(self, payment: Payment) -> None:
        self.tx.put("payments", payment.id, payment)


class PaymentsIgnoringTheCursor(_Payments):
    """``list()`` that ignores ``after``: every page is the first."""

    def list(self, *, after: str | None, limit: int) -> Sequence[Payment]:
        return super().list(after=None, limit=limit)


class PurgeRequestsAtOrBefore(_Idempotency):
    """``purge_requests`` deletes records made at the cutoff too (the rule: strictly
    before)."""

    def purge_requests(self, *, created_before: datetime, limit: int) -> int:
        old = sorted((r for r in self.tx.values("idempotency")
                      if r.order_id is None and r.created_at <= created_before),
                     key=lambda r: r.created_at)[:limit]
        for record in old:
            self.tx.delete("idempotency", (record.scope, record.key))
        return len(old)


class PurgeRequestsNewestFirst(_Idempotency):
    """``purge_requests`` under a limit deletes the newest records first."""

    def purge_requests(self, *, created_before: datetime, limit: int) -> int:
        old: list[IdempotencyRecord] = sorted(
            (r for r in self.tx.values("idempotency")
             if r.order_id is None and r.created_at < created_before),
            key=lambda r: r.created_at, reverse=True)[:limit]
        for record in old:
            self.tx.delete("idempotency", (record.scope, record.key))
        return len(old)


class DuplicateEventAccepted(_Outbox):
    """``add()`` of an event whose id is taken writes it over the first."""

    def add(self, events: Sequence[DomainEvent]) -> None:
        for event in events:
            if self.tx.get("outbox", event.id) is not None:
                self.tx.delete("outbox", event.id)
        super().add(events)


class MarkPublishedMovesTheTime(_Outbox):
    """``mark_published`` of an event published already gives it the new time."""

    def mark_published(self, event_ids: Any, *, at: datetime) -> None:
        for event_id in event_ids:
            entry = self.tx.get("outbox", event_id)
            if entry is not None:
                self.tx.put("outbox", event_id, attrs.evolve(entry, published_at=at))


# -- stores with one repository replaced --------------------------------------------------


class BrokenInventoryStore(InMemoryInventoryStore):
    """The in-memory inventory store, its repository ``name`` of the class ``broken``."""

    def __init__(self, name: str, broken: type[Any]) -> None:
        super().__init__()
        self.name, self.broken = name, broken

    def unit_of_work(self) -> _InventoryUnitOfWork:
        uow = super().unit_of_work()
        setattr(uow, self.name, self.broken(getattr(uow, self.name).tx))
        return uow


class BrokenOrderStore(InMemoryOrderStore):
    """The in-memory order store, its repository ``name`` of the class ``broken``."""

    def __init__(self, name: str, broken: type[Any]) -> None:
        super().__init__()
        self.name, self.broken = name, broken

    def unit_of_work(self) -> _OrderUnitOfWork:
        uow = super().unit_of_work()
        setattr(uow, self.name, self.broken(getattr(uow, self.name).tx))
        return uow


# -- broken gateways -----------------------------------------------------------------------


class RefundAboveCaptureIsAConflict(SandboxPaymentGateway):
    """A refund above what is left of the capture raises the library's
    `RefundExceedsCaptured` (the rule: the gateway says `PaymentDeclined`)."""

    def refund(self, *, authorization_id: str, amount: Money, idempotency_key: str) -> str:
        for auth in self.authorizations():
            if auth.id == authorization_id and amount.amount > auth.captured - auth.refunded:
                raise RefundExceedsCaptured(amount.amount, auth.captured - auth.refunded,
                                            amount.currency)
        return super().refund(authorization_id=authorization_id, amount=amount,
                              idempotency_key=idempotency_key)


class RefundsWhatWasNeverCaptured(SandboxPaymentGateway):
    """A refund of a hold nothing was captured from is answered with a refund id."""

    def refund(self, *, authorization_id: str, amount: Money, idempotency_key: str) -> str:
        for auth in self.authorizations():
            if auth.id == authorization_id and auth.captured == 0:
                return f"re_{idempotency_key}"
        return super().refund(authorization_id=authorization_id, amount=amount,
                              idempotency_key=idempotency_key)


class UnknownAuthorizationIsUnavailable(SandboxPaymentGateway):
    """An authorization id it never gave is a transient fault, to be retried forever (the
    rule: a permanent `PaymentDeclined`)."""

    def _known(self, authorization_id: str) -> None:
        if all(auth.id != authorization_id for auth in self.authorizations()):
            raise PaymentUnavailable(f"no answer about {authorization_id}")

    def capture(self, *, authorization_id: str, amount: Money, idempotency_key: str) -> None:
        self._known(authorization_id)
        super().capture(authorization_id=authorization_id, amount=amount,
                        idempotency_key=idempotency_key)

    def void(self, *, authorization_id: str, idempotency_key: str) -> None:
        self._known(authorization_id)
        super().void(authorization_id=authorization_id, idempotency_key=idempotency_key)

    def refund(self, *, authorization_id: str, amount: Money, idempotency_key: str) -> str:
        self._known(authorization_id)
        return super().refund(authorization_id=authorization_id, amount=amount,
                              idempotency_key=idempotency_key)


class VoidOfVoidedIsDeclined(SandboxPaymentGateway):
    """A void of a hold voided already, under a new key, is declined (the rule: it
    succeeds, the outcome asked for)."""

    def void(self, *, authorization_id: str, idempotency_key: str) -> None:
        if any(auth.id == authorization_id and auth.status == "voided"
               for auth in self.authorizations()):
            raise PaymentDeclined("authorization is voided", decline_code="authorization_voided")
        super().void(authorization_id=authorization_id, idempotency_key=idempotency_key)


class FindsCapturedHolds(SandboxPaymentGateway):
    """``find_authorization`` answers a captured hold too (the rule: only a live one)."""

    def find_authorization(self, *, idempotency_key: str) -> GatewayAuthorization | None:
        for auth in self.authorizations():
            if auth.idempotency_key == idempotency_key and auth.status in ("authorized",
                                                                          "captured"):
                return GatewayAuthorization(auth.id, auth.amount)
        return None


TOKENS = {"approve": "tok_visa", "decline": "tok_declined"}

# -- the cases: (the suite's method, the broken variant, what its failure says) -------------

Inventory = InventoryStoreConformance
Orders = OrderStoreConformance
Gateway = PaymentGatewayConformance

INVENTORY_CASES = [
    pytest.param(Inventory.test_a_later_update_wins_and_levels_leave_out_skus_without_any,
                 "products", ProductUpdateWritesNothing, "want the last one written",
                 id="product-update-keeps-first"),
    pytest.param(Inventory.test_a_later_update_wins_and_levels_leave_out_skus_without_any,
                 "stock", LevelsWithEmptyRows, "SKU-3 has no level", id="levels-empty-rows"),
    pytest.param(Inventory.test_a_later_update_wins_and_levels_leave_out_skus_without_any,
                 "stock", LevelUpdateInsertsAMissingOne, "expected ConcurrencyConflict",
                 id="level-update-upserts"),
    pytest.param(Inventory.test_low_stock_is_ordered_by_sku_and_cut_at_the_limit,
                 "stock", LowByAvailable, r"low\(10, limit=10\) gave", id="low-by-available"),
    pytest.param(Inventory.test_low_stock_is_ordered_by_sku_and_cut_at_the_limit,
                 "stock", LowWithoutLimit, r"low\(10, limit=2\) gave", id="low-no-limit"),
    pytest.param(Inventory.test_adding_a_taken_warehouse_code_is_a_conflict_and_changes_nothing,
                 "warehouses", DuplicateWarehouseAccepted, "expected Conflict, nothing",
                 id="duplicate-warehouse"),
    pytest.param(Inventory.test_products_added_in_bulk_are_all_or_none_even_if_the_caller_commits,
                 "products", AddManyOneByOne, "after the refused add_many", id="add-many-partial"),
    pytest.param(Inventory.test_updating_a_missing_product_or_warehouse_writes_nothing,
                 "products", UpdateOfMissingProductRaises, "raised NotFound",
                 id="update-missing-raises"),
    pytest.param(Inventory.test_updating_a_missing_product_or_warehouse_writes_nothing,
                 "products", UpdateOfMissingProductCreatesIt, "of a missing SKU created",
                 id="update-missing-creates"),
    pytest.param(Inventory.test_adding_a_stock_level_twice_is_a_conflict,
                 "stock", DuplicateStockLevelAccepted, "expected Conflict, nothing",
                 id="duplicate-stock-level"),
    pytest.param(Inventory.test_adding_a_reservation_under_a_taken_id_is_a_conflict,
                 "reservations", DuplicateReservationAccepted, "expected Conflict, nothing",
                 id="duplicate-reservation"),
    pytest.param(Inventory.test_movements_are_listed_newest_first_per_sku_up_to_the_limit,
                 "movements", MovementsOldestFirst, r"movements.list\('SKU-1', limit=10\)",
                 id="movements-oldest-first"),
    pytest.param(Inventory.test_movements_are_listed_newest_first_per_sku_up_to_the_limit,
                 "movements", MovementsWithoutLimit, r"movements.list\('SKU-1', limit=2\)",
                 id="movements-no-limit"),
    pytest.param(Inventory.test_expired_reservations_come_earliest_first_up_to_the_limit,
                 "reservations", ExpiredById, r"expired\(T0\+5m, limit=10\)",
                 id="expired-by-id"),
    pytest.param(Inventory.test_expired_reservations_come_earliest_first_up_to_the_limit,
                 "reservations", ExpiredWithoutLimit, r"expired\(T0\+5m, limit=2\)",
                 id="expired-no-limit"),
    pytest.param(Inventory.test_live_reservations_are_ordered_by_id,
                 "reservations", LiveInOrderAdded, r"live\(\) gave", id="live-unordered"),
]

ORDER_CASES = [
    pytest.param(
        Orders.test_requests_are_purged_strictly_before_the_time_the_oldest_first_up_to_the_limit,
        "idempotency", PurgeRequestsAtOrBefore, "want h1 deleted and h2 kept",
        id="purge-requests-inclusive"),
    pytest.param(
        Orders.test_requests_are_purged_strictly_before_the_time_the_oldest_first_up_to_the_limit,
        "idempotency", PurgeRequestsNewestFirst, "want 1, the oldest",
        id="purge-requests-newest-first"),
    pytest.param(Orders.test_adding_an_order_under_a_taken_id_is_a_conflict,
                 "orders", DuplicateOrderAccepted, "expected Conflict, nothing",
                 id="duplicate-order"),
    pytest.param(Orders.test_adding_a_payment_under_a_taken_id_is_a_conflict,
                 "payments", DuplicatePaymentAccepted, "expected Conflict, nothing",
                 id="duplicate-payment"),
    pytest.param(Orders.test_payments_are_listed_by_id_after_a_cursor_up_to_the_limit,
                 "payments", PaymentsIgnoringTheCursor, r"payments.list\(after='pay-2'",
                 id="payments-ignore-cursor"),
    pytest.param(Orders.test_unfinished_orders_touched_at_once_come_by_id_up_to_the_limit,
                 "orders", UnfinishedTiesInOrderAdded, r"unfinished\(updated_before=T0",
                 id="unfinished-ties-unordered"),
]

GATEWAY_CASES = [
    pytest.param(Gateway.test_a_refund_of_a_hold_never_captured_is_declined,
                 RefundsWhatWasNeverCaptured, "expected PaymentDeclined, nothing",
                 id="refund-uncaptured"),
    pytest.param(Gateway.test_a_refund_above_the_capture_is_declined_and_refunds_nothing,
                 RefundAboveCaptureIsAConflict, "expected PaymentDeclined, got RefundExceeds",
                 id="refund-above-capture-conflict"),
    pytest.param(Gateway.test_an_unknown_authorization_is_declined,
                 UnknownAuthorizationIsUnavailable, "expected PaymentDeclined, got Payment"
                 "Unavailable", id="unknown-authorization-unavailable"),
    pytest.param(Gateway.test_a_void_of_a_voided_hold_under_another_key_succeeds,
                 VoidOfVoidedIsDeclined, "raised PaymentDeclined", id="void-of-voided-declined"),
    pytest.param(Gateway.test_a_captured_hold_is_no_longer_found_as_an_authorization,
                 FindsCapturedHolds, "find_authorization of a captured hold gave",
                 id="finds-captured-hold"),
]


@pytest.mark.parametrize(("check", "name", "broken", "says"), INVENTORY_CASES)
def test_the_inventory_suite_fails_a_store_that_breaks_the_rule(
    check: Callable[[InventoryStoreConformance, InMemoryInventoryStore], None],
    name: str, broken: type[Any], says: str,
) -> None:
    check(InventoryStoreConformance(), InMemoryInventoryStore())  # the real store passes
    with pytest.raises(AssertionError, match=says):
        check(InventoryStoreConformance(), BrokenInventoryStore(name, broken))


@pytest.mark.parametrize(("check", "name", "broken", "says"), ORDER_CASES)
def test_the_order_suite_fails_a_store_that_breaks_the_rule(
    check: Callable[[OrderStoreConformance, InMemoryOrderStore], None],
    name: str, broken: type[Any], says: str,
) -> None:
    check(OrderStoreConformance(), InMemoryOrderStore())
    with pytest.raises(AssertionError, match=says):
        check(OrderStoreConformance(), BrokenOrderStore(name, broken))


OUTBOX_CASES = [
    pytest.param(OutboxConformance.test_a_taken_event_id_is_a_conflict, DuplicateEventAccepted,
                 "expected Conflict, nothing", id="duplicate-event"),
    pytest.param(OutboxConformance.test_marking_unknown_or_published_events_leaves_them_alone,
                 MarkPublishedMovesTheTime, "its first time was moved",
                 id="mark-published-moves-time"),
]


@pytest.mark.parametrize(("check", "broken", "says"), OUTBOX_CASES)
def test_the_outbox_suite_fails_an_outbox_that_breaks_the_rule(
    check: Callable[[OutboxConformance, InMemoryOrderStore], None],
    broken: type[Any], says: str,
) -> None:
    check(OutboxConformance(), InMemoryOrderStore())
    with pytest.raises(AssertionError, match=says):
        check(OutboxConformance(), BrokenOrderStore("outbox", broken))


@pytest.mark.parametrize(("check", "broken", "says"), GATEWAY_CASES)
def test_the_gateway_suite_fails_a_gateway_that_breaks_the_rule(
    check: Callable[[PaymentGatewayConformance, SandboxPaymentGateway, dict[str, str]], None],
    broken: type[SandboxPaymentGateway], says: str,
) -> None:
    check(PaymentGatewayConformance(), SandboxPaymentGateway(), TOKENS)
    with pytest.raises(AssertionError, match=says):
        check(PaymentGatewayConformance(), broken(), TOKENS)



# -- racing checks fail, never hang, and say what a thread raised -------------------------


class ClaimsWithoutLeasing(InMemoryWebhookStore):
    """``claim_due`` hands out due deliveries without leasing them: every claimer gets them
    again, forever (a first draft's bug that used to hang the racing check)."""

    def claim_due(self, *, now: datetime, owner: str, until: datetime, limit: int,
                  per_endpoint: int, endpoint_id: str | None = None) -> Sequence[Delivery]:
        claimed = super().claim_due(now=now, owner=owner, until=until, limit=limit,
                                    per_endpoint=per_endpoint, endpoint_id=endpoint_id)
        with self._lock:
            for delivery in claimed:
                self._leases.pop(delivery.id, None)
        return claimed


def test_racing_claimers_of_a_store_that_never_leases_fail_the_check_instead_of_hanging(
) -> None:
    check = WebhookStoreConformance.test_racing_claimers_never_take_the_same_delivery
    check(WebhookStoreConformance(), InMemoryWebhookStore())
    with pytest.raises(AssertionError, match="still handed deliveries after 100 claims"):
        check(WebhookStoreConformance(), ClaimsWithoutLeasing())


class LockedOut(_Stock):
    """Every lock fails with a driver error the store did not map to a transient one."""

    def lock(self, skus: Any) -> Sequence[StockLevel]:
        raise StoreError("database is locked")


def test_an_error_in_a_racing_thread_fails_the_check_with_that_error() -> None:
    check = Inventory.test_concurrent_reservations_never_oversell
    with pytest.raises(StoreError, match="database is locked"):
        check(InventoryStoreConformance(), BrokenInventoryStore("stock", LockedOut))

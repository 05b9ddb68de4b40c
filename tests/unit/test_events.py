"""Domain events: which changes write which events, in the same transaction, on every backend."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from commerce_core import (
    ConcurrencyConflict,
    InsufficientStock,
    Money,
    PaymentDeclined,
    Platform,
    RetryPolicy,
)
from commerce_core.events import (
    DomainEvent,
    EventPublishFailed,
    InProcessPublisher,
    OutboxRelay,
    OutboxStore,
    deduplicated,
    publisher_from_url,
)
from commerce_core.testing import (
    InMemoryInventoryStore,
    InMemoryOrderStore,
    SandboxPaymentGateway,
)
from tests.conftest import order, seed


def _events(store: OutboxStore) -> list[DomainEvent]:
    with store.unit_of_work() as uow:
        return list(uow.outbox.pending(limit=1000))


def _order_events(platform: Platform, order_id: str) -> list[str]:
    return [e.type for e in _events(platform.order_store) if e.aggregate_id == order_id]


def test_an_order_s_life_is_told_in_events(platform: Platform) -> None:
    seed(platform)
    placed = platform.checkout.place_order(order(("MUG", 2)), idempotency_key="k1")
    platform.checkout.ship(placed.id, carrier="DHL", tracking_number="T1")
    platform.checkout.deliver(placed.id)
    platform.checkout.refund(placed.id, amount=Money(500, "EUR"), reason="chipped")
    platform.checkout.refund(placed.id, reason="returned")
    assert _order_events(platform, placed.id) == [
        "order.placed", "order.confirmed", "payment.captured", "order.shipped",
        "order.delivered", "order.refunded", "order.refunded",
    ]
    events = [e for e in _events(platform.order_store) if e.aggregate_id == placed.id]
    sequences = [e.sequence for e in events]
    assert sequences == sorted(set(sequences))  # grows along the order's history
    confirmed = events[1]
    assert confirmed.payload["status"] == "confirmed"
    assert confirmed.payload["total"] == {"amount": 2500, "currency": "EUR"}
    assert confirmed.payload["lines"] == [{"sku": "MUG", "quantity": 2, "shipped_quantity": 0,
                                          "cancelled_quantity": 0, "returned_quantity": 0}]
    assert events[3].payload["tracking_number"] == "T1"
    assert [e.payload["refunded"]["amount"] for e in events[5:]] == [500, 2000]
    assert events[-1].payload["status"] == "refunded"


def test_failed_and_cancelled_orders_say_so(platform: Platform) -> None:
    seed(platform, {"MUG": 1, "POT": 3, "TEA": 5})
    with pytest.raises(PaymentDeclined) as declined:
        platform.checkout.place_order(order(("POT", 1), token="tok_declined"),
                                      idempotency_key="k1")
    with pytest.raises(InsufficientStock) as short:
        platform.checkout.place_order(order(("MUG", 2)), idempotency_key="k2")
    kept = platform.checkout.place_order(order(("TEA", 1)), idempotency_key="k3")
    platform.checkout.cancel(kept.id)
    assert declined.value.order_id and short.value.order_id
    assert _order_events(platform, declined.value.order_id) == ["order.placed", "order.failed"]
    failed = _events(platform.order_store)[1]
    assert failed.payload["reason"] == "payment-declined"
    assert _order_events(platform, short.value.order_id) == ["order.placed", "order.failed"]
    assert _order_events(platform, kept.id) == ["order.placed", "order.confirmed",
                                                "order.cancelled"]


def test_a_replayed_checkout_writes_no_second_event(platform: Platform) -> None:
    seed(platform)
    first = platform.checkout.place_order(order(("MUG", 1)), idempotency_key="k1")
    platform.checkout.place_order(order(("MUG", 1)), idempotency_key="k1")
    assert _order_events(platform, first.id) == ["order.placed", "order.confirmed"]
    assert len(_events(platform.order_store)) == 2


def test_stock_events_adjusted_and_low_once_per_crossing() -> None:
    platform = Platform.from_adapters(
        order_store=InMemoryOrderStore(), inventory_store=InMemoryInventoryStore(),
        payment_gateway=SandboxPaymentGateway(), retry=RetryPolicy.immediate(),
        low_stock_threshold=3)
    seed(platform, {"MUG": 6, "POT": 3, "TEA": 50})
    for n in range(3):
        platform.checkout.place_order(order(("MUG", 1)), idempotency_key=f"k{n}")
    events = _events(platform.inventory_store)
    assert [(e.type, e.aggregate_id) for e in events] == [
        ("stock.adjusted", "MUG"), ("stock.adjusted", "POT"), ("stock.adjusted", "TEA"),
        ("stock.low", "MUG"),  # 6 → 5 → 4 → 3: once, when it reached the threshold
    ]
    assert events[0].payload == {"sku": "MUG", "available": 6, "warehouse": "BER",
                                 "delta": 6, "reason": "initial stock", "reference": None,
                                 "on_hand": 6}
    assert events[-1].payload == {"sku": "MUG", "available": 3, "threshold": 3}
    assert events[-1].sequence > events[0].sequence


def test_a_change_that_does_not_commit_writes_no_event(platform: Platform) -> None:
    """A stale write (someone else changed the order first) rolls back with its event."""
    seed(platform)
    stale = platform.checkout.place_order(order(("MUG", 1)), idempotency_key="k1")
    platform.checkout.cancel(stale.id)  # the order moves on; ``stale`` is an old version
    with pytest.raises(ConcurrencyConflict):
        platform.checkout.save(stale, event="order.delivered")
    assert _order_events(platform, stale.id) == ["order.placed", "order.confirmed",
                                                 "order.cancelled"]


def test_the_in_process_publisher_routes_by_pattern_and_reports_failures() -> None:
    publisher = publisher_from_url("memory://")
    assert isinstance(publisher, InProcessPublisher)
    orders: list[str] = []
    everything: list[str] = []
    publisher.subscribe("order.*", lambda e: orders.append(e.type))
    publisher.subscribe("*", lambda e: everything.append(e.type))
    events = [_event("order.placed", "e1"), _event("stock.low", "e2")]
    publisher.publish(events)
    assert orders == ["order.placed"]
    assert everything == ["order.placed", "stock.low"]

    def broken(_: DomainEvent) -> None:
        raise RuntimeError("mail server down")

    publisher.subscribe("stock.*", broken)
    with pytest.raises(EventPublishFailed, match="mail server down"):
        publisher.publish(events)


def test_deduplicated_handlers_see_each_event_once() -> None:
    seen: list[str] = []
    handle: Callable[[DomainEvent], None] = deduplicated(lambda e: seen.append(e.id))
    for event_id in ["a", "b", "a", "c", "b"]:
        handle(_event("order.placed", event_id))
    assert seen == ["a", "b", "c"]


def test_events_round_trip_through_their_wire_format() -> None:
    event = _event("order.placed", "e1")
    assert DomainEvent.from_dict(event.to_dict()) == event


def test_platform_relays_drain_both_stores(platform: Platform) -> None:
    seed(platform)
    platform.checkout.place_order(order(("MUG", 1)), idempotency_key="k1")
    received: list[str] = []
    publisher = InProcessPublisher()
    publisher.subscribe("*", lambda e: received.append(e.type))
    relays = platform.outbox_relays(lambda: publisher, batch_size=2)
    assert [relay.name for relay in relays] == ["orders", "inventory"]
    assert sum(relay.drain() for relay in relays) == 5
    assert received == ["order.placed", "order.confirmed"] + ["stock.adjusted"] * 3
    assert _events(platform.order_store) == _events(platform.inventory_store) == []
    with pytest.raises(ValueError, match="batch_size"):
        OutboxRelay(platform.order_store, publisher, name="x", batch_size=0)


def _event(type_: str, event_id: str) -> DomainEvent:
    return DomainEvent(id=event_id, type=type_, aggregate_type="order", aggregate_id="o1",
                       sequence=1, occurred_at=datetime(2026, 1, 1, tzinfo=UTC),
                       payload={"x": [1, 2]})

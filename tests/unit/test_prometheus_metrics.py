"""commerce-core-prometheus in one process: the core's events as metric families, the
outbox backlog read at a scrape, the pool's connections in use."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
import sqlalchemy
from prometheus_client.parser import text_string_to_metric_families

from commerce_core import InsufficientStock, Platform
from commerce_core.events import Backlog, DomainEvent, OutboxStore, outbox_backlog
from commerce_core.retry import RetryPolicy
from commerce_core.testing import InMemoryOrderStore
from commerce_core_prometheus import Metrics, OutboxBacklog, PrometheusTelemetry
from tests.conftest import order, seed


def _value(metrics: Metrics, name: str, **labels: str) -> float:
    return sum(sample.value
               for family in text_string_to_metric_families(metrics.exposition().decode())
               for sample in family.samples
               if sample.name == name and set(labels.items()) <= set(sample.labels.items()))


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
def shop(tmp_path: Path, metrics: Metrics) -> Iterator[Platform]:
    with Platform.from_urls(orders=f"sqlite:///{tmp_path}/o.db",
                            inventory=f"sqlite:///{tmp_path}/i.db", payments="sandbox://",
                            retry=RetryPolicy.immediate(),
                            telemetry=PrometheusTelemetry(metrics)) as platform:
        seed(platform)
        yield platform


def test_checkouts_steps_and_provider_calls_become_metrics(shop: Platform,
                                                          metrics: Metrics) -> None:
    shop.checkout.place_order(order(("MUG", 1)), idempotency_key="k1")
    shop.checkout.place_order(order(("MUG", 1), token="tok_flaky"), idempotency_key="k2")
    with pytest.raises(InsufficientStock):
        shop.checkout.place_order(order(("POT", 50)), idempotency_key="k3")
    assert _value(metrics, "commerce_checkouts_total", outcome="confirmed") == 2
    assert _value(metrics, "commerce_checkouts_total", outcome="insufficient-stock") == 1
    assert _value(metrics, "commerce_stockouts_total") == 1
    assert _value(metrics, "commerce_provider_calls_total", operation="authorize",
                  outcome="unavailable") == 2
    assert _value(metrics, "commerce_provider_call_duration_seconds_count",
                  operation="authorize") == 4
    assert _value(metrics, "commerce_saga_step_duration_seconds_count", step="started") == 3
    assert _value(metrics, "commerce_checkout_duration_seconds_bucket", outcome="confirmed",
                  le="+Inf") == 2


def test_the_outbox_backlog_and_its_age_are_read_at_each_scrape(shop: Platform,
                                                                metrics: Metrics) -> None:
    now = [0.0]
    metrics.add(OutboxBacklog([("orders", shop.order_store),
                               ("inventory", shop.inventory_store)], clock=lambda: now[0]))
    placed = shop.checkout.place_order(order(("MUG", 1)), idempotency_key="k1")
    now[0] = placed.created_at.timestamp() + 90  # the clock of the scrape
    assert _value(metrics, "commerce_outbox_pending", store="orders") >= 2
    age = _value(metrics, "commerce_outbox_oldest_age_seconds", store="orders")
    assert 80 <= age <= 100
    for store in (shop.order_store, shop.inventory_store):  # published: nothing waits
        with store.unit_of_work() as uow:
            events = uow.outbox.pending(limit=1000)
            uow.outbox.mark_published([e.id for e in events],
                                      at=placed.created_at + timedelta(seconds=1))
            uow.commit()
    assert _value(metrics, "commerce_outbox_pending", store="orders") == 0
    assert _value(metrics, "commerce_outbox_oldest_age_seconds", store="orders") == 0


def test_the_series_alerts_watch_exist_at_zero_before_anything_happens() -> None:
    """An alert on increase() sees the first failure only if the series had a sample
    before it: the known label sets are made at 0 when the metrics are."""
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(Metrics().exposition().decode())
               for s in family.samples}
    assert samples[("commerce_recovery_orders_total", (("result", "failed"),))] == 0
    assert samples[("commerce_rate_limited_total", (("limit", "checkout"),))] == 0
    assert samples[("commerce_checkouts_total", (("outcome", "payment-unavailable"),))] == 0
    assert samples[("commerce_provider_calls_total", (("operation", "capture"),
                                                      ("outcome", "unavailable")))] == 0
    assert samples[("commerce_provider_call_duration_seconds_count",
                    (("operation", "refund"),))] == 0


def test_a_scrape_reads_no_event_whole(shop: Platform, metrics: Metrics) -> None:
    """The SQL stores answer the backlog with a bounded count and one row's time."""
    metrics.add(OutboxBacklog([("orders", shop.order_store)]))
    shop.checkout.place_order(order(("MUG", 1)), idempotency_key="k1")
    engine = shop.order_store.engine  # type: ignore[attr-defined]
    statements: list[str] = []

    def seen(conn: object, cursor: object, statement: str, *args: object) -> None:
        statements.append(statement)

    sqlalchemy.event.listen(engine, "before_cursor_execute", seen)
    try:
        assert _value(metrics, "commerce_outbox_pending", store="orders") >= 2
    finally:
        sqlalchemy.event.remove(engine, "before_cursor_execute", seen)
    assert statements and not any("payload" in s for s in statements), statements


class _PortOnly:
    """An outbox store whose outbox has the port's methods and no ``backlog()``."""

    def __init__(self, store: OutboxStore) -> None:
        self.store = store

    @contextlib.contextmanager
    def unit_of_work(self) -> Iterator[SimpleNamespace]:
        with self.store.unit_of_work() as uow:
            yield SimpleNamespace(outbox=SimpleNamespace(pending=uow.outbox.pending))


def test_a_store_without_a_backlog_report_is_counted_from_its_events(tmp_path: Path) -> None:
    store = InMemoryOrderStore()
    events = [DomainEvent.new("order.placed", aggregate_type="order", aggregate_id=f"o{n}",
                              sequence=1, at=datetime(2026, 12, 2, tzinfo=UTC)
                              + timedelta(seconds=n), payload={}) for n in range(1200)]
    with store.unit_of_work() as uow:
        uow.outbox.add(events)
        uow.commit()
    plain = _PortOnly(store)
    assert outbox_backlog(plain, most=5) == Backlog(5, events[0].occurred_at)  # type: ignore[arg-type]
    assert outbox_backlog(plain) == Backlog(1000, events[0].occurred_at)  # type: ignore[arg-type]
    assert outbox_backlog(store) == Backlog(1200, events[0].occurred_at)  # its own report
    metrics = Metrics()
    metrics.add(OutboxBacklog([("orders", plain)]))  # type: ignore[list-item]
    assert _value(metrics, "commerce_outbox_pending", store="orders") == 1000


def test_pool_connections_in_use_rise_and_fall(shop: Platform, metrics: Metrics) -> None:
    engine = shop.order_store.engine  # type: ignore[attr-defined]
    metrics.watch_pool(engine, "orders")
    with engine.connect():
        assert _value(metrics, "commerce_db_pool_connections_in_use", store="orders") == 1
    assert _value(metrics, "commerce_db_pool_connections_in_use", store="orders") == 0


def test_an_unknown_event_and_a_broken_label_change_nothing(metrics: Metrics) -> None:
    telemetry = PrometheusTelemetry(metrics)
    telemetry.record("something_new", outcome="x")
    telemetry.record("checkout")  # no outcome label: counted under "?"
    assert _value(metrics, "commerce_checkouts_total", outcome="?") == 1

"""The core's telemetry: which events a checkout, a failure, a flaky provider and a recovery
report, with which labels, and the tree of spans a checkout makes."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from commerce_core import InsufficientStock, PaymentDeclined, Platform
from commerce_core.events import DomainEvent, OutboxStore
from commerce_core.retry import RetryPolicy
from commerce_core.telemetry import (
    NO_TELEMETRY,
    Attributes,
    GuardedTelemetry,
    TelemetryFanout,
    clean_carrier,
    set_trace_source,
)
from commerce_core.testing import ManualClock, RecordingTelemetry, SandboxPaymentGateway
from commerce_core_sqlalchemy import SqlAlchemyInventoryStore, SqlAlchemyOrderStore
from tests.conftest import order, seed


@pytest.fixture
def telemetry() -> RecordingTelemetry:
    return RecordingTelemetry()


@pytest.fixture
def shop(tmp_path: Path, telemetry: RecordingTelemetry) -> Iterator[Platform]:
    with Platform.from_urls(orders=f"sqlite:///{tmp_path}/o.db",
                            inventory=f"sqlite:///{tmp_path}/i.db", payments="sandbox://",
                            retry=RetryPolicy.immediate(), telemetry=telemetry) as platform:
        seed(platform)
        yield platform


def test_a_confirmed_checkout_is_one_event_with_its_steps_and_provider_call(
    shop: Platform, telemetry: RecordingTelemetry,
) -> None:
    shop.checkout.place_order(order(("MUG", 1)), idempotency_key="k1")
    assert telemetry.counts("checkout", outcome="confirmed") == 1
    assert telemetry.counts("checkout") == 1
    assert telemetry.counts("provider_call", operation="authorize", outcome="ok") == 1
    assert telemetry.counts("saga_step", step="started") == 1
    assert all(e.seconds is not None and e.seconds >= 0 for e in telemetry.events
               if e.event in ("checkout", "saga_step", "provider_call"))
    tree = [(s.name, s.parent) for s in telemetry.spans]
    assert tree == [("checkout.place_order", None), ("saga.step", "checkout.place_order"),
                    ("payment.authorize", "saga.step")]
    assert telemetry.spans[1].attributes == {"saga.step": "started"}


def test_failures_are_told_by_their_code_and_no_label_carries_an_id(
    shop: Platform, telemetry: RecordingTelemetry,
) -> None:
    with pytest.raises(InsufficientStock):
        shop.checkout.place_order(order(("POT", 99)), idempotency_key="k1")
    with pytest.raises(PaymentDeclined):
        shop.checkout.place_order(order(("MUG", 1), token="tok_declined"),
                                  idempotency_key="k2")
    assert telemetry.counts("checkout", outcome="insufficient-stock") == 1
    assert telemetry.counts("stock_out") == 1
    assert telemetry.counts("checkout", outcome="payment-declined") == 1
    assert telemetry.counts("provider_call", operation="authorize", outcome="declined") == 1
    labels = {value for e in telemetry.events for value in e.labels.values()}
    assert not any(value.startswith(("ord_", "pay_", "res_")) for value in labels), labels


def test_every_try_of_a_flaky_provider_is_a_call(shop: Platform,
                                                  telemetry: RecordingTelemetry) -> None:
    shop.checkout.place_order(order(("MUG", 1), token="tok_flaky"), idempotency_key="k1")
    assert telemetry.counts("provider_call", operation="authorize", outcome="unavailable") == 2
    assert telemetry.counts("provider_call", operation="authorize", outcome="ok") == 1
    assert telemetry.counts("checkout", outcome="confirmed") == 1


def test_shipping_and_refunds_are_provider_calls_too(shop: Platform,
                                                     telemetry: RecordingTelemetry) -> None:
    placed = shop.checkout.place_order(order(("MUG", 2)), idempotency_key="k1")
    shop.checkout.ship(placed.id, carrier="DHL", tracking_number="J1")
    shop.checkout.refund(placed.id, reason="broken")
    assert telemetry.counts("provider_call", operation="capture", outcome="ok") == 1
    assert telemetry.counts("provider_call", operation="refund", outcome="ok") == 1


def test_a_recovery_sweep_reports_its_results(tmp_path: Path) -> None:
    telemetry = RecordingTelemetry()
    clock = ManualClock()
    gateway = SandboxPaymentGateway()
    crash_at = {"stock_reserved"}

    def crash(step: str, _: object) -> None:
        if step in crash_at:
            raise RuntimeError("the process died here")

    with Platform.from_adapters(
            order_store=SqlAlchemyOrderStore.from_url(f"sqlite:///{tmp_path}/o.db"),
            inventory_store=SqlAlchemyInventoryStore.from_url(f"sqlite:///{tmp_path}/i.db"),
            payment_gateway=gateway, clock=clock, retry=RetryPolicy.immediate(),
            on_step=crash, telemetry=telemetry) as platform:
        seed(platform)
        with pytest.raises(RuntimeError):
            platform.checkout.place_order(order(("MUG", 1)), idempotency_key="k1")
        crash_at.clear()
        clock.advance(timedelta(minutes=5))
        report = platform.checkout.recover(grace=timedelta(minutes=1))
    assert len(report.finished) == 1
    assert telemetry.counts("recovery", result="finished") == 1
    assert telemetry.counts("checkout", outcome="error") == 1  # the crash, as it happened


def test_no_telemetry_and_a_fanout_ask_nothing_of_the_caller() -> None:
    first, second = RecordingTelemetry(), RecordingTelemetry()
    both = TelemetryFanout([first, second, NO_TELEMETRY])
    with both.span("outer", {"a": 1}), both.span("inner", {}):
        both.record("stock_out")
    for telemetry in (first, second):
        assert [(s.name, s.parent) for s in telemetry.spans] == [("outer", None),
                                                                 ("inner", "outer")]
        assert telemetry.counts("stock_out") == 1


class _Broken:
    """A telemetry that fails where it is told to: in ``record`` of one event, or when a
    span starts or ends."""

    def __init__(self, *, event: str = "", span: str = "") -> None:
        self.event, self.where = event, span

    @contextlib.contextmanager
    def span(self, name: str, attributes: Attributes) -> Iterator[None]:
        if self.where == "enter":
            raise RuntimeError("telemetry down")
        yield
        if self.where == "exit":
            raise RuntimeError("telemetry down")

    def record(self, event: str, *, count: int = 1, seconds: float | None = None,
               **labels: str) -> None:
        if event == self.event:
            raise RuntimeError("telemetry down")


@pytest.mark.parametrize("broken", [
    {"event": "checkout"}, {"event": "provider_call"}, {"event": "saga_step"},
    {"span": "enter"}, {"span": "exit"}], ids=str)
def test_a_telemetry_that_fails_never_fails_the_checkout(
    tmp_path: Path, broken: dict[str, str], caplog: pytest.LogCaptureFixture,
) -> None:
    recorded = RecordingTelemetry()
    telemetry = TelemetryFanout([_Broken(**broken), recorded])
    with Platform.from_urls(orders=f"sqlite:///{tmp_path}/o.db",
                            inventory=f"sqlite:///{tmp_path}/i.db", payments="sandbox://",
                            retry=RetryPolicy.immediate(), telemetry=telemetry) as platform:
        seed(platform)
        placed = platform.checkout.place_order(order(("MUG", 1)), idempotency_key="k1")
        assert placed.status.value == "confirmed"
        with pytest.raises(PaymentDeclined):  # the work's own error goes on unchanged
            platform.checkout.place_order(order(("MUG", 1), token="tok_declined"),
                                          idempotency_key="k2")
    assert recorded.counts("checkout", outcome="confirmed") == 1  # the others still record
    assert "telemetry" in caplog.text


def test_a_step_that_raises_is_still_a_step(telemetry: RecordingTelemetry) -> None:
    guarded_one = GuardedTelemetry(telemetry)
    with pytest.raises(ZeroDivisionError), guarded_one.span("outer", {}):
        _ = 1 / 0
    assert [s.name for s in telemetry.spans] == ["outer"]


# -- the trace context that travels with events ----------------------------------------------

PARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
#: the longest tracestate kept: two members, their values all backslashes and quotes (legal
#: characters that JSON doubles: a store's column must take them)
LONGEST = "a=" + '\\"' * 127 + ",b=" + '\\"' * 126 + "x"
assert len(LONGEST) == 512


@pytest.fixture
def trace_source() -> Iterator[list[Mapping[str, object]]]:
    """A trace source giving the carriers put in the list (the last one), removed after."""
    carriers: list[Mapping[str, object]] = []
    set_trace_source(lambda: carriers[-1])
    yield carriers
    set_trace_source(None)


@pytest.mark.parametrize(("carrier", "kept"), [
    ({"traceparent": PARENT}, {"traceparent": PARENT}),
    ({"traceparent": PARENT, "tracestate": "congo=t61rcWkgMzE", "baggage": "user=alice"},
     {"traceparent": PARENT, "tracestate": "congo=t61rcWkgMzE"}),  # never the baggage
    ({"traceparent": PARENT, "tracestate": "a=1\r\nX-Injected: yes"},
     {"traceparent": PARENT}),  # no line break reaches a header
    ({"traceparent": PARENT, "tracestate": "x" * 513}, {"traceparent": PARENT}),
    ({"traceparent": PARENT, "tracestate": "rojo=00f067aa0ba902b7 ,\tcongo=t61rcWkgMzE"},
     {"traceparent": PARENT, "tracestate": "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"}),
    ({"traceparent": PARENT, "tracestate": ",a=1, ,fw529a3039@dt=x,"},  # empty members
     {"traceparent": PARENT, "tracestate": "a=1,fw529a3039@dt=x"}),
    ({"traceparent": PARENT, "tracestate": "  "}, {"traceparent": PARENT}),
    ({"traceparent": PARENT, "tracestate": LONGEST},  # legal, 512 characters
     {"traceparent": PARENT, "tracestate": LONGEST}),
    # over 512: members over 128 characters go first, from the end
    ({"traceparent": PARENT, "tracestate": LONGEST + "y,c=1"},
     {"traceparent": PARENT, "tracestate": LONGEST.split(",", maxsplit=1)[0] + ",c=1"}),
    # then the last ones
    ({"traceparent": PARENT, "tracestate": ",".join(f"k{n:02d}=" + "v" * 20 for n in range(30))},
     {"traceparent": PARENT, "tracestate": ",".join(f"k{n:02d}=" + "v" * 20
                                                    for n in range(20))}),  # 499
    ({"traceparent": PARENT, "tracestate": "a=" + "v" * 257}, {"traceparent": PARENT}),
    ({"traceparent": PARENT, "tracestate": "a=1,no-equals-sign"}, {"traceparent": PARENT}),
    ({"traceparent": PARENT, "tracestate": "a=b=c"}, {"traceparent": PARENT}),
    ({"traceparent": PARENT, "tracestate": "Upper=1"}, {"traceparent": PARENT}),
    ({"traceparent": PARENT, "tracestate": "a=1\r\n,b=2"}, {"traceparent": PARENT}),
    ({"traceparent": PARENT, "tracestate": ",".join(f"k{n}=v" for n in range(33))},
     {"traceparent": PARENT, "tracestate": ",".join(f"k{n}=v" for n in range(32))}),
    ({"traceparent": PARENT, "tracestate": 7}, {"traceparent": PARENT}),
    ({"traceparent": PARENT.upper()}, {}),
    ({"traceparent": PARENT + "\n"}, {}),
    ({"traceparent": "ff" + PARENT[2:]}, {}),  # the forbidden version
    ({"traceparent": "00-" + "0" * 32 + "-00f067aa0ba902b7-01"}, {}),  # no trace id
    ({"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-" + "0" * 16 + "-01"}, {}),
    ({"traceparent": b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}, {}),
    ({"tracestate": "congo=t61rcWkgMzE"}, {}),
    ({}, {}), (None, {}), ("traceparent", {}), ([("traceparent", PARENT)], {}),
])
def test_only_a_well_formed_w3c_context_is_kept(carrier: object,
                                                 kept: dict[str, str]) -> None:
    assert clean_carrier(carrier) == kept


def test_events_carry_the_trace_context_they_were_made_in(
        trace_source: list[Mapping[str, object]]) -> None:
    at = datetime(2026, 12, 2, tzinfo=UTC)
    trace_source.append({"traceparent": PARENT, "baggage": "secret=1"})
    event = DomainEvent.new("order.placed", aggregate_type="order", aggregate_id="ord_1",
                            sequence=1, at=at, payload={})
    assert event.trace == {"traceparent": PARENT}
    assert "trace" not in event.to_dict()  # the data stays as it was: headers carry it
    again = DomainEvent.from_dict(event.to_dict(), trace={**event.trace, "junk": "x"})
    assert again == event
    assert DomainEvent.from_dict(event.to_dict()).trace == {}
    set_trace_source(None)
    assert DomainEvent.new("order.placed", aggregate_type="order", aggregate_id="ord_1",
                           sequence=1, at=at, payload={}).trace == {}


def test_a_trace_source_that_fails_leaves_the_event_untraced(
        trace_source: list[Mapping[str, object]], caplog: pytest.LogCaptureFixture) -> None:
    # the source's list is empty: reading it raises IndexError
    event = DomainEvent.new("stock.adjusted", aggregate_type="product", aggregate_id="MUG",
                            sequence=1, at=datetime(2026, 12, 2, tzinfo=UTC), payload={})
    assert event.trace == {}
    assert "reading the trace context failed" in caplog.text


def test_a_checkout_writes_its_trace_context_into_both_outboxes(
        shop: Platform, trace_source: list[Mapping[str, object]]) -> None:
    stores: list[OutboxStore] = [shop.orders.store, shop.inventory.store]
    before = {e.id for store in stores for e in _pending(store)}
    trace_source.append({"traceparent": PARENT})
    shop.checkout.place_order(order(("MUG", 1)), idempotency_key="traced")
    shop.inventory.adjust_stock("MUG", "BER", delta=2, reason="found")
    made = [e for store in stores for e in _pending(store) if e.id not in before]
    assert {e.type for e in made} >= {"order.placed", "order.confirmed", "stock.adjusted"}
    assert all(e.trace == {"traceparent": PARENT} for e in made)


def _pending(store: OutboxStore) -> list[DomainEvent]:
    with store.unit_of_work() as uow:
        return list(uow.outbox.pending(limit=100))

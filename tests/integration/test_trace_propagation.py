"""The trace context travels with the events: a traced checkout writes its W3C context into
both outboxes; the relays (on threads of their own) send it to RabbitMQ as message headers
and to the webhook endpoints as ``traceparent``; a consumer's span continues the checkout's
trace, a child of the span that made the event. Real SQLite stores, a real broker, a real
HTTP receiver, the SDK's in-memory exporter."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from commerce_core import Platform
from commerce_core.events import DomainEvent
from commerce_core.runner import BackgroundRunner
from commerce_core.telemetry import set_trace_source
from commerce_core_otel import OtelTelemetry, event_span
from commerce_core_rabbitmq import RabbitMQConsumer, RabbitMQPublisher
from tests.conftest import order, require, seed
from tests.webhook_receiver import receiver

BROKER = "amqp://guest:guest@127.0.0.1:5672/%2F"
SECRET = "whsec_" + "t" * 32


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    yield exporter
    set_trace_source(None)  # OtelTelemetry registered itself for the process


def _hex(number: int, width: int) -> str:
    return format(number, f"0{width}x")


def test_a_consumer_and_a_webhook_receiver_continue_the_checkouts_trace(
        tmp_path: Path, exporter: InMemorySpanExporter) -> None:
    require("rabbitmq")
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    platform = Platform.from_urls(orders=f"sqlite:///{tmp_path}/o.db",
                                  inventory=f"sqlite:///{tmp_path}/i.db", payments="sandbox://",
                                  telemetry=OtelTelemetry(provider), low_stock_threshold=1)
    seed(platform, {"MUG": 3})
    exchange = f"test.trace.{uuid.uuid4().hex[:8]}"
    consumer = RabbitMQConsumer(BROKER, queue=f"{exchange}.all", exchange=exchange)
    assert platform.webhooks is not None
    try:
        with receiver(SECRET) as hooks:
            platform.webhooks.put_endpoint("erp", url=hooks.url, secret=SECRET,
                                           events=["order.*", "stock.*"])
            placed = platform.checkout.place_order(order(("MUG", 3)), idempotency_key="k1")
            checkout = next(s for s in exporter.get_finished_spans()
                            if s.name == "checkout.place_order")
            made_in = {s.context.span_id: s.name for s in exporter.get_finished_spans()
                       if s.context.trace_id == checkout.context.trace_id}
            runner = BackgroundRunner(
                platform, publishers=lambda: RabbitMQPublisher(BROKER, exchange=exchange),
                webhooks=platform.webhooks, webhook_interval=timedelta(milliseconds=50),
                recover_at_start=False)
            with runner:
                # the checkout's events, and the seed's (made where nothing traced)
                delivered = hooks.wait_for_types({"order.confirmed"})
                received: list[DomainEvent] = []

                def handle(event: DomainEvent) -> None:
                    with event_span(event, tracer_provider=provider):
                        received.append(event)

                deadline = time.monotonic() + 20
                while not {"order.confirmed", "stock.low"} <= {e.type for e in received}:
                    assert time.monotonic() < deadline, [e.type for e in received]
                    consumer.consume(handle, idle_timeout=0.5)
    finally:
        consumer.delete_queue()
        consumer.close()
        platform.close()
        provider.shutdown()

    trace_id = _hex(checkout.context.trace_id, 32)
    # the broker: every event of the checkout, from both stores, carried its context
    mine = [e for e in received if e.aggregate_id in (placed.id, "MUG")
            and e.type != "stock.adjusted"]
    assert {e.type for e in mine} >= {"order.placed", "order.confirmed", "stock.low"}
    consumed = {s.attributes["messaging.message.id"]: s  # type: ignore[index]
                for s in exporter.get_finished_spans() if s.name.endswith(" process")}
    for event in mine:
        span: ReadableSpan = consumed[event.id]
        assert span.context.trace_id == checkout.context.trace_id, event.type
        assert span.parent is not None and span.parent.span_id in made_in, event.type
    confirmed = consumed[next(e.id for e in mine if e.type == "order.confirmed")]
    assert made_in[confirmed.parent.span_id] == "saga.step"  # type: ignore[union-attr]
    # the seed's events were made outside any trace: their consumers start traces of their own
    seeded = [e for e in received if e.type == "stock.adjusted"]
    assert seeded and all(e.trace == {} for e in seeded)
    assert all(consumed[e.id].parent is None for e in seeded)

    # the webhooks: the same context, as the W3C header
    by_type = {body["type"]: hooks.headers[body["id"]] for body in delivered}
    parent = by_type["order.confirmed"]["traceparent"]
    version, trace, span_id, _ = parent.split("-")
    assert (version, trace) == ("00", trace_id)
    assert int(span_id, 16) in made_in
    assert "traceparent" not in by_type.get("stock.adjusted", {})

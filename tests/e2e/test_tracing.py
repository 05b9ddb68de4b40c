"""Tracing: a checkout over HTTP is one trace continuing the caller's ``traceparent``, with
the expected tree of spans (the request, the command, the saga step, the provider call,
the database statements), recorded by the SDK's in-memory exporter; and
``OTEL_TRACES_EXPORTER`` chooses the exporters."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from commerce_core_otel import tracer_provider_from_env
from commerce_server.asgi import build_app
from commerce_server.config import Settings
from commerce_server.logs import JsonFormatter
from tests.e2e.conftest import ALICE_KEY, client_of, sqlite_env, stock_a_mug
from tests.e2e.test_server import ADDRESS, auth

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def spans_of(tmp_path: Path, exporter: InMemorySpanExporter) -> Iterator[list[ReadableSpan]]:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    app = build_app(Settings.from_env(sqlite_env(tmp_path)), provider)

    async def run() -> None:
        async with client_of(app) as http:
            await stock_a_mug(http)
            exporter.clear()
            placed = await http.post("/v1/orders", headers=auth(ALICE_KEY, **{
                "Idempotency-Key": "t1", "traceparent": f"00-{TRACE_ID}-{PARENT}-01"}), json={
                "lines": [{"sku": "MUG-01", "quantity": 1}], "payment": {"token": "tok_visa"},
                "shipping_address": ADDRESS})
            assert placed.status_code == 201, placed.text
            await http.get("/healthz")

    asyncio.run(run())
    yield list(exporter.get_finished_spans())
    provider.shutdown()


def test_a_checkout_is_one_trace_with_the_expected_tree(spans_of: list[ReadableSpan]) -> None:
    spans = spans_of
    assert spans, "no span recorded"
    assert {format(s.context.trace_id, "032x") for s in spans} == {TRACE_ID}  # continued
    by_id = {s.context.span_id: s for s in spans}

    def parent(span: ReadableSpan) -> str | None:
        found = by_id.get(span.parent.span_id) if span.parent is not None else None
        return None if found is None else found.name

    named = {s.name: s for s in spans}
    server = named["POST /v1/orders"]
    assert format(server.parent.span_id, "016x") == PARENT  # type: ignore[union-attr]
    assert server.attributes is not None and server.attributes["http.route"] == "/v1/orders"
    assert parent(named["checkout.place_order"]) == "POST /v1/orders"
    assert parent(named["saga.step"]) == "checkout.place_order"
    assert parent(named["payment.authorize"]) == "saga.step"
    step = named["saga.step"].attributes
    assert step is not None and step["saga.step"] == "started"
    outcome = named["checkout.place_order"].attributes
    assert outcome is not None and outcome["commerce.outcome"] == "confirmed"
    database = [s for s in spans if s.attributes and "db.system" in s.attributes]
    assert database, "no database span"
    assert {parent(s) for s in database} >= {"checkout.place_order", "saga.step"}
    assert not any(s.name.startswith("GET /healthz") for s in spans)  # probes: no trace


def test_the_exporters_are_chosen_by_the_standard_variable() -> None:
    assert tracer_provider_from_env({}) is None
    assert tracer_provider_from_env({"OTEL_TRACES_EXPORTER": "none"}) is None
    provider = tracer_provider_from_env({"OTEL_TRACES_EXPORTER": "console,otlp"})
    assert provider is not None
    assert provider.resource.attributes["service.name"] == "commerce-server"
    provider.shutdown()
    with pytest.raises(ValueError, match="jaeger"):
        tracer_provider_from_env({"OTEL_TRACES_EXPORTER": "jaeger"})


def test_json_log_lines_carry_the_trace_id(tmp_path: Path) -> None:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
    app = build_app(Settings.from_env(sqlite_env(tmp_path)), provider)
    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(JsonFormatter().format(record))

    handler = Keep(level=logging.INFO)
    library = logging.getLogger("commerce_core")
    level = library.level
    library.setLevel(logging.INFO)  # a declined card is told at INFO
    library.addHandler(handler)

    async def run() -> None:
        async with client_of(app) as http:
            await stock_a_mug(http)
            declined = await http.post("/v1/orders", headers=auth(ALICE_KEY, **{
                "Idempotency-Key": "d1", "traceparent": f"00-{TRACE_ID}-{PARENT}-01"}), json={
                "lines": [{"sku": "MUG-01", "quantity": 1}],
                "payment": {"token": "tok_declined"}, "shipping_address": ADDRESS})
            assert declined.status_code == 402

    try:
        asyncio.run(run())
    finally:
        library.removeHandler(handler)
        library.setLevel(level)
        provider.shutdown()
    failed = [json.loads(line) for line in lines if "failed at checkout" in line]
    assert failed and all(line["trace_id"] == TRACE_ID for line in failed)
    assert all(line["order_id"] and line["order_id"].startswith("ord_") for line in failed)

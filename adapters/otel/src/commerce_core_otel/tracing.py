"""Spans for what the core does (its `Telemetry` port), for HTTP requests and for database
statements, and a tracer provider configured from the environment."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from commerce_core.events import DomainEvent
from commerce_core.telemetry import Attributes, set_trace_source

__all__ = ["OtelTelemetry", "event_context", "event_span", "instrument_engines", "trace_app",
           "tracer_provider_from_env"]

log = logging.getLogger("commerce_core.otel")

#: the events whose ``outcome`` says whether the span's work failed
_FAILED = {"checkout": {"confirmed"}, "provider_call": {"ok"}}

#: W3C trace context, whatever ``OTEL_PROPAGATORS`` says: events carry ``traceparent``
_W3C = TraceContextTextMapPropagator()


def _current_headers() -> dict[str, str]:
    carrier: dict[str, str] = {}
    _W3C.inject(carrier)
    return carrier


def event_context(event: DomainEvent) -> otel_context.Context:
    """The trace context ``event`` was made in (from its ``trace``), as an OpenTelemetry
    context: the parent for a consumer's own spans."""
    return _W3C.extract(dict(event.trace))


@contextlib.contextmanager
def event_span(event: DomainEvent, *, tracer_provider: trace.TracerProvider | None = None,
               name: str | None = None) -> Iterator[trace.Span]:
    """For a consumer of events (an outbox subscriber, a broker consumer): a consumer span,
    ``"<event type> process"``, in the trace the event was made in, current until the block
    ends. An event made where nothing traced starts a trace of its own."""
    tracer = trace.get_tracer("commerce_core", tracer_provider=tracer_provider)
    with tracer.start_as_current_span(
            name or f"{event.type} process", context=event_context(event),
            kind=SpanKind.CONSUMER,
            attributes={"messaging.operation.type": "process",
                        "messaging.message.id": event.id,
                        "commerce.event_type": event.type}) as span:
        yield span


class OtelTelemetry:
    """The core's `Telemetry` as OpenTelemetry spans: ``checkout.place_order``,
    ``saga.step`` (with ``saga.step``), ``payment.<operation>``; an event's outcome is set
    on the span it ends (``commerce.outcome``), and a failed one marks it an error.

    Made, it becomes the process's trace source (`commerce_core.telemetry.set_trace_source`):
    the events written from then on carry the W3C context of the span they were made in,
    and the broker and the webhooks send it on."""

    def __init__(self, tracer_provider: trace.TracerProvider | None = None) -> None:
        self.tracer = trace.get_tracer("commerce_core", tracer_provider=tracer_provider)
        set_trace_source(_current_headers)

    @contextlib.contextmanager
    def span(self, name: str, attributes: Attributes) -> Iterator[None]:
        with self.tracer.start_as_current_span(name, attributes=dict(attributes)):
            yield

    def record(self, event: str, *, count: int = 1, seconds: float | None = None,
               **labels: str) -> None:
        outcome = labels.get("outcome")
        if outcome is None:
            return
        span = trace.get_current_span()
        if not span.is_recording():
            return
        span.set_attribute("commerce.outcome", outcome)
        if event in _FAILED and outcome not in _FAILED[event]:
            span.set_status(Status(StatusCode.ERROR, outcome))


class _RouteName:
    """Inside the request's span: when the response starts (routing has chosen a route, and
    the span is still open), the span is named by the route's template
    (``POST /v1/orders/{id}/ship``, never an id) and carries ``http.route``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        span = trace.get_current_span()

        async def naming(message: Message) -> None:
            if message["type"] == "http.response.start" and span.is_recording():
                route = scope.get("route")
                root = str(scope.get("root_path", "")).rstrip("/")
                path = getattr(route, "path", None)
                template = (f"{root}/*" if isinstance(route, Mount)  # nothing matched in it
                            else f"{root}{path}" if isinstance(path, str) else "unmatched")
                span.update_name(f"{scope.get('method', 'HTTP')} {template}")
                span.set_attribute("http.route", template)
            await send(message)

        await self.app(scope, receive, naming)


def trace_app(app: Starlette, *, tracer_provider: trace.TracerProvider | None = None,
              excluded_urls: str = "healthz,readyz,metrics") -> None:
    """Give ``app`` a server span per HTTP request (the request's W3C ``traceparent``
    continued), named by the route's template, outermost of its middleware; the probes and
    ``/metrics`` are left out."""
    app.add_middleware(_RouteName)
    app.add_middleware(OpenTelemetryMiddleware, excluded_urls=excluded_urls,
                       tracer_provider=tracer_provider, exclude_spans=["receive", "send"])


def instrument_engines(engines: Iterable[Any], *,
                       tracer_provider: trace.TracerProvider | None = None) -> None:
    """A span per statement on these SQLAlchemy engines (the stores' ``engine``). The
    instrumentation is one per process: a second call traces its engines instead."""
    from opentelemetry.instrumentation.sqlalchemy import (  # noqa: PLC0415
        SQLAlchemyInstrumentor,
    )

    found = [engine for engine in engines if engine is not None]
    if found:
        instrumentor = SQLAlchemyInstrumentor()  # one per process: the newest app's engines
        if instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.uninstrument()
        # the instrumentation declares SQLAlchemy < 2.1, and works on 2.1's engine events
        # (the tracing test checks the database spans): its version check is skipped
        instrumentor.instrument(engines=found, tracer_provider=tracer_provider,
                                enable_commenter=False, skip_dep_check=True)


def tracer_provider_from_env(environ: Mapping[str, str] | None = None, *,
                             service_name: str = "commerce-server",
                             ) -> TracerProvider | None:
    """A tracer provider for ``OTEL_TRACES_EXPORTER`` (comma-separated: ``console``,
    ``otlp``; ``none`` or unset: ``None``, no tracing). The resource takes
    ``OTEL_SERVICE_NAME`` and ``OTEL_RESOURCE_ATTRIBUTES``; the OTLP exporter its own
    ``OTEL_EXPORTER_OTLP_*`` variables (HTTP/protobuf). `ValueError` for an exporter it
    does not know."""
    env = os.environ if environ is None else environ
    names = [n.strip().lower() for n in env.get("OTEL_TRACES_EXPORTER", "").split(",")
             if n.strip()]
    names = [n for n in names if n != "none"]
    if not names:
        return None
    processors: list[SpanProcessor] = []
    for name in names:
        if name == "console":
            processors.append(BatchSpanProcessor(ConsoleSpanExporter()))
        elif name == "otlp":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # noqa: PLC0415
                OTLPSpanExporter,
            )

            processors.append(BatchSpanProcessor(OTLPSpanExporter()))
        else:
            raise ValueError(f"OTEL_TRACES_EXPORTER: {name!r} is not console, otlp or none")
    attributes = {} if env.get("OTEL_SERVICE_NAME") else {"service.name": service_name}
    provider = TracerProvider(resource=Resource.create(attributes))
    for processor in processors:
        provider.add_span_processor(processor)
    return provider

"""OpenTelemetry tracing for commerce-core: the core's telemetry as spans, a span per HTTP
request, database spans, and a tracer provider from the standard ``OTEL_*`` variables."""

from commerce_core_otel.tracing import (
    OtelTelemetry,
    event_context,
    event_span,
    instrument_engines,
    trace_app,
    tracer_provider_from_env,
)

__all__ = ["OtelTelemetry", "event_context", "event_span", "instrument_engines", "trace_app",
           "tracer_provider_from_env"]

"""Test doubles shipped as public API: in-memory stores, the sandbox gateway, conformance
suites (`commerce_core.testing.conformance`) and invariant checks."""

from commerce_core.testing.clock import ManualClock
from commerce_core.testing.invariants import (
    InvariantViolation,
    ProviderBooks,
    ProviderRecord,
    check_invariants,
    fulfilment_problems,
    return_problems,
)
from commerce_core.testing.memory import InMemoryInventoryStore, InMemoryOrderStore
from commerce_core.testing.sandbox import (
    SANDBOX_TOKENS,
    SandboxAuthorization,
    SandboxPaymentGateway,
)
from commerce_core.testing.telemetry import RecordedEvent, RecordedSpan, RecordingTelemetry

__all__ = [
    "SANDBOX_TOKENS",
    "InMemoryInventoryStore",
    "InMemoryOrderStore",
    "InvariantViolation",
    "ManualClock",
    "ProviderBooks",
    "ProviderRecord",
    "RecordedEvent",
    "RecordedSpan",
    "RecordingTelemetry",
    "SandboxAuthorization",
    "SandboxPaymentGateway",
    "check_invariants",
    "fulfilment_problems",
    "return_problems",
]

"""What the core tells about its work, for metrics and traces: a port with a do-nothing
default. Adapters turn it into Prometheus metrics (``commerce_core_prometheus``) or
OpenTelemetry spans; a host may implement it for anything else.

The core names what it measures with a few stable events; labels are small closed sets
(a step's name, an operation, an outcome), never an id, so that the metrics made from
them stay bounded."""

from __future__ import annotations

import contextlib
import logging
import re
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from typing import Protocol

__all__ = [
    "EVENTS",
    "NO_TELEMETRY",
    "Attributes",
    "GuardedTelemetry",
    "NoTelemetry",
    "Telemetry",
    "TelemetryFanout",
    "Timer",
    "TraceCarrier",
    "clean_carrier",
    "current_order_id",
    "guarded",
    "order_context",
    "set_trace_source",
    "trace_carrier",
]

log = logging.getLogger("commerce_core.telemetry")

Attributes = Mapping[str, str | int | float | bool]

#: The events the core records, with their labels:
#:
#: - ``checkout``: a place-order command ended; ``outcome`` (``confirmed``, or the error's
#:   code: ``insufficient-stock``, ``payment-declined``, ``payment-unavailable``, ...),
#:   seconds.
#: - ``saga_step``: one step of the saga ran; ``step`` (the `SagaStep` it started at),
#:   seconds.
#: - ``provider_call``: one call to the payment provider, each retry counted;
#:   ``operation`` (``authorize``, ``capture``, ``void``, ``refund``,
#:   ``find_authorization``, ``list_refunds``), ``outcome`` (``ok``, ``declined``,
#:   ``unavailable``, ``error``), seconds.
#: - ``stock_out``: a reservation was refused for lack of stock (count).
#: - ``reservations_expired``: reservations released by an expiry sweep (count).
#: - ``recovery``: orders a recovery sweep handled; ``result`` (``finished``,
#:   ``unfinished``, ``failed``) (count).
EVENTS = frozenset({"checkout", "saga_step", "provider_call", "stock_out",
                    "reservations_expired", "recovery"})


class Telemetry(Protocol):
    """Where the core reports what it does. Both methods are called on the request's own
    thread, in the middle of the work: they must be quick, and must never raise."""

    def span(self, name: str, attributes: Attributes) -> contextlib.AbstractContextManager[None]:
        """A unit of work (``checkout.place_order``, ``saga.step``, ``payment.authorize``)
        that may enclose others: a trace's span."""

    def record(self, event: str, *, count: int = 1, seconds: float | None = None,
               **labels: str) -> None:
        """One of the `EVENTS` happened (``count`` times, taking ``seconds``)."""


class NoTelemetry:
    """Reports nothing (the default)."""

    @contextlib.contextmanager
    def span(self, name: str, attributes: Attributes) -> Iterator[None]:
        yield

    def record(self, event: str, *, count: int = 1, seconds: float | None = None,
               **labels: str) -> None:
        return None


NO_TELEMETRY = NoTelemetry()


class GuardedTelemetry:
    """A telemetry whose faults never reach the work it measures: an error in ``record``,
    or in entering or leaving a span, is logged and dropped, and the work's own error (if
    any) goes on unchanged. The core guards whatever telemetry it is given."""

    def __init__(self, inner: Telemetry) -> None:
        self.inner = inner

    @contextlib.contextmanager
    def span(self, name: str, attributes: Attributes) -> Iterator[None]:
        try:
            manager = self.inner.span(name, attributes)
            manager.__enter__()
        except Exception:
            log.exception("telemetry: starting span %s failed", name)
            yield
            return
        try:
            yield
        except BaseException:
            kind, error, trace = sys.exc_info()
            try:
                manager.__exit__(kind, error, trace)  # never allowed to swallow the error
            except Exception:
                log.exception("telemetry: ending span %s failed", name)
            raise
        try:
            manager.__exit__(None, None, None)
        except Exception:
            log.exception("telemetry: ending span %s failed", name)

    def record(self, event: str, *, count: int = 1, seconds: float | None = None,
               **labels: str) -> None:
        try:
            self.inner.record(event, count=count, seconds=seconds, **labels)
        except Exception:
            log.exception("telemetry: recording %s failed", event)


def guarded(telemetry: Telemetry | None) -> Telemetry:
    """``telemetry`` guarded (`GuardedTelemetry`), or `NO_TELEMETRY` for none."""
    if telemetry is None or isinstance(telemetry, NoTelemetry | GuardedTelemetry):
        return telemetry or NO_TELEMETRY
    return GuardedTelemetry(telemetry)


class TelemetryFanout:
    """Several telemetries as one (metrics and traces together), each guarded: one that
    fails neither stops the others nor the work."""

    def __init__(self, telemetries: Sequence[Telemetry]) -> None:
        self.telemetries = tuple(guarded(t) for t in telemetries)

    @contextlib.contextmanager
    def span(self, name: str, attributes: Attributes) -> Iterator[None]:
        with contextlib.ExitStack() as stack:
            for telemetry in self.telemetries:
                stack.enter_context(telemetry.span(name, attributes))
            yield

    def record(self, event: str, *, count: int = 1, seconds: float | None = None,
               **labels: str) -> None:
        for telemetry in self.telemetries:
            telemetry.record(event, count=count, seconds=seconds, **labels)


class Timer:
    """Seconds since it was made (a monotonic clock: wall-clock jumps do not count)."""

    __slots__ = ("_began",)

    def __init__(self) -> None:
        self._began = time.perf_counter()

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self._began


_ORDER_ID: ContextVar[str | None] = ContextVar("commerce_order_id", default=None)


def current_order_id() -> str | None:
    """The order whose saga steps are running on this thread or task, if any: for log
    lines (the reference server's JSON logs carry it as ``order_id``)."""
    return _ORDER_ID.get()


@contextlib.contextmanager
def order_context(order_id: str) -> Iterator[None]:
    """Name the order being worked on (`current_order_id`) until the block ends."""
    token = _ORDER_ID.set(order_id)
    try:
        yield
    finally:
        _ORDER_ID.reset(token)


# -- the trace context that travels with events ---------------------------------------------

#: W3C trace context headers (``traceparent``, and ``tracestate`` with it): what an event
#: carries of the trace it was made in, so that its consumers continue that trace.
TraceCarrier = Mapping[str, str]

_TRACEPARENT = re.compile(r"[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}")
#: a W3C tracestate list member, ``key=value``: a key of lower-case letters, digits and
#: ``_-*/`` (``tenant@system`` for multi-tenant ones), a value of printable ASCII but ``,``
#: and ``=`` that does not end in a space
_VALUE = r"[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]"
_MEMBER = re.compile(rf"[a-z0-9][a-z0-9_\-*/@]{{0,255}}={_VALUE}")
#: what is kept of a tracestate (the specification's limits: propagate at least 512
#: characters, at most 32 members)
_STATE_LENGTH, _STATE_MEMBERS, _LONG_MEMBER = 512, 32, 128
_NO_TRACE = "0" * 32
_NO_SPAN = "0" * 16

TraceSource = Callable[[], Mapping[str, object]]

_trace_source: list[TraceSource] = []  # none, or the one registered


def set_trace_source(source: TraceSource | None) -> None:
    """Name what gives the current trace context as headers (the OpenTelemetry adapter's
    propagator, registered by ``OtelTelemetry``); `None` stops it. One for the process: the
    trace context is the thread's or task's own anyway."""
    _trace_source[:] = [] if source is None else [source]


def clean_carrier(carrier: object) -> dict[str, str]:
    """``carrier``'s W3C ``traceparent`` (and its ``tracestate``) if well formed, else
    nothing: what is stored with an event and sent as headers is never more than that (no
    baggage, no line breaks, at most 512 characters and 32 members of state)."""
    if not isinstance(carrier, Mapping):
        return {}
    parent = carrier.get("traceparent")
    if not isinstance(parent, str) or not _TRACEPARENT.fullmatch(parent):
        return {}
    version, trace_id, span_id, _ = parent.split("-")
    if version == "ff" or trace_id == _NO_TRACE or span_id == _NO_SPAN:
        return {}
    clean = {"traceparent": parent}
    state = _clean_state(carrier.get("tracestate"))
    if state:
        clean["tracestate"] = state
    return clean


def _clean_state(state: object) -> str | None:
    """A W3C tracestate's members (empty ones and the spaces around them left out), or
    `None` when one is malformed (the whole header is then dropped, as the specification
    says). Beyond 32 members or 512 characters it is cut as the specification says: members
    over 128 characters go first, from the end, then the last ones."""
    if not isinstance(state, str) or len(state) > 8 * _STATE_LENGTH:
        return None
    members = [m.strip(" \t") for m in state.split(",")]
    members = [m for m in members if m]
    if not all(_MEMBER.fullmatch(m) for m in members):
        return None
    members = members[:_STATE_MEMBERS]
    while len(",".join(members)) > _STATE_LENGTH:
        long = [i for i, m in enumerate(members) if len(m) > _LONG_MEMBER]
        del members[long[-1] if long else -1]
    return ",".join(members)


def trace_carrier() -> dict[str, str]:
    """The trace context of the work under way as W3C headers (empty when nothing traces).
    `DomainEvent.new` keeps it in the event. Never raises."""
    sources = tuple(_trace_source)  # one read: another thread may change it
    if not sources:
        return {}
    try:
        return clean_carrier(sources[0]())
    except Exception:
        log.exception("telemetry: reading the trace context failed")
        return {}

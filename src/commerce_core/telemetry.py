"""What the core tells about its work, for metrics and traces: a port with a do-nothing
default. Adapters turn it into Prometheus metrics (``commerce_core_prometheus``) or
OpenTelemetry spans; a host may implement it for anything else.

The core names what it measures with a few stable events; labels are small closed sets
(a step's name, an operation, an outcome), never an id, so that the metrics made from
them stay bounded."""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
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
    "current_order_id",
    "guarded",
    "order_context",
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

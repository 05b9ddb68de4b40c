"""`RecordingTelemetry`: a `Telemetry` that keeps what it is told, for tests."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import attrs

from commerce_core.telemetry import Attributes

__all__ = ["RecordedEvent", "RecordedSpan", "RecordingTelemetry"]


@attrs.frozen
class RecordedSpan:
    """A span: its name, attributes, and the name of the span it ran in (``None``: none)."""

    name: str
    attributes: dict[str, str | int | float | bool]
    parent: str | None


@attrs.frozen
class RecordedEvent:
    event: str
    count: int
    seconds: float | None
    labels: dict[str, str]


class RecordingTelemetry:
    """Keeps every span (in the order they began) and every event; spans nest per thread."""

    def __init__(self) -> None:
        self.spans: list[RecordedSpan] = []
        self.events: list[RecordedEvent] = []
        self._lock = threading.Lock()
        self._open = threading.local()

    @contextlib.contextmanager
    def span(self, name: str, attributes: Attributes) -> Iterator[None]:
        stack: list[str] = self._open.__dict__.setdefault("stack", [])
        with self._lock:
            self.spans.append(RecordedSpan(name, dict(attributes), stack[-1] if stack else None))
        stack.append(name)
        try:
            yield
        finally:
            stack.pop()

    def record(self, event: str, *, count: int = 1, seconds: float | None = None,
               **labels: str) -> None:
        with self._lock:
            self.events.append(RecordedEvent(event, count, seconds, dict(labels)))

    def counts(self, event: str, **labels: str) -> int:
        """How many times ``event`` happened with (at least) these labels."""
        with self._lock:
            return sum(e.count for e in self.events if e.event == event
                       and all(e.labels.get(k) == v for k, v in labels.items()))

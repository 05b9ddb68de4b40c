"""Domain events, the transactional outbox and its relay.

A service writes the events a change causes into its store's outbox *in the same
transaction* as the change, so an event exists if and only if its change was committed.
`OutboxRelay` then hands them to an `EventPublisher` (in-process subscribers, or a
broker adapter such as ``commerce-core-rabbitmq``): at least once, in the order they were
written, which within one aggregate is the order of its changes. A relay that dies between
publishing and recording that it published sends those events again; consumers deduplicate
by `DomainEvent.id` (`deduplicated`).
"""

from __future__ import annotations

import fnmatch
import logging
import os
import socket
import threading
from collections import OrderedDict
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, Protocol, Self

import attrs

from commerce_core._registry import EVENT_PUBLISHERS, load_adapter
from commerce_core.clock import Clock, new_id, system_clock
from commerce_core.errors import CommerceError, Conflict
from commerce_core.telemetry import clean_carrier, trace_carrier
from commerce_core.unit_of_work import UnitOfWork

__all__ = [
    "Backlog",
    "DomainEvent",
    "EventHandler",
    "EventPublishFailed",
    "EventPublisher",
    "InProcessPublisher",
    "OutboxRelay",
    "OutboxRepository",
    "OutboxStore",
    "SeenEvents",
    "deduplicated",
    "outbox_backlog",
    "publisher_from_url",
    "relay_owner",
]

log = logging.getLogger("commerce_core.events")


@attrs.frozen(kw_only=True)
class DomainEvent:
    """Something that happened to one aggregate.

    ``sequence`` grows along the aggregate's history (it is the aggregate's version after
    the change, so gaps are normal): a consumer that sees a lower sequence than one it has
    applied for the same aggregate is looking at a stale duplicate. The events of one
    change share its sequence (``order.refunded`` and ``return.refunded``, written
    together): an equal sequence is not stale; tell duplicates apart by ``id``.

    ``trace`` is the W3C trace context (``traceparent``, ``tracestate``) of the work that
    made the event, when something traces (`commerce_core.telemetry.trace_carrier`); the
    outbox keeps it and the broker and webhooks send it as headers, so that a consumer
    continues the trace. It is not part of the event's data.
    """

    id: str
    type: str  # "order.confirmed", "stock.adjusted", ...
    aggregate_type: str
    aggregate_id: str
    sequence: int
    occurred_at: datetime
    payload: Mapping[str, Any] = attrs.field(factory=dict)
    trace: Mapping[str, str] = attrs.field(factory=dict)

    @classmethod
    def new(
        cls, type: str, *, aggregate_type: str, aggregate_id: str, sequence: int,
        at: datetime, payload: Mapping[str, Any],
    ) -> DomainEvent:
        return cls(id=new_id("evt"), type=type, aggregate_type=aggregate_type,
                   aggregate_id=aggregate_id, sequence=sequence, occurred_at=at,
                   payload=dict(payload), trace=trace_carrier())

    def to_dict(self) -> dict[str, Any]:
        """The event as JSON-ready data (the wire format of the broker adapters; the trace
        context goes in the message's headers, not here)."""
        return {"id": self.id, "type": self.type, "aggregate_type": self.aggregate_type,
                "aggregate_id": self.aggregate_id, "sequence": self.sequence,
                "occurred_at": self.occurred_at.isoformat(), "payload": dict(self.payload)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any],
                  trace: Mapping[str, Any] | None = None) -> DomainEvent:
        """The event from `to_dict`'s data, with the trace context of the message that
        carried it (its headers: anything but a well-formed ``traceparent`` is dropped)."""
        return cls(id=data["id"], type=data["type"], aggregate_type=data["aggregate_type"],
                   aggregate_id=data["aggregate_id"], sequence=int(data["sequence"]),
                   occurred_at=datetime.fromisoformat(data["occurred_at"]),
                   payload=dict(data["payload"]), trace=clean_carrier(trace))


class OutboxRepository(Protocol):
    """The outbox table of one store."""

    def add(self, events: Sequence[DomainEvent]) -> None:
        """Write events in this unit of work: they commit or roll back with it."""
    def pending(self, *, limit: int) -> Sequence[DomainEvent]:
        """Unpublished events, oldest first (the order they were written)."""
    def mark_published(self, event_ids: Collection[str], *, at: datetime) -> None: ...
    def claim(self, relay: str, *, owner: str, now: datetime, until: datetime) -> bool:
        """Take or renew the relay's lease: true if ``owner`` now holds it until ``until``
        (it was free, expired, or already ``owner``'s)."""
    def purge(self, *, published_before: datetime, limit: int) -> int:
        """Delete up to ``limit`` events published before the given time; how many."""


class _OutboxUnitOfWork(UnitOfWork, Protocol):
    @property
    def outbox(self) -> OutboxRepository: ...


class OutboxStore(Protocol):
    """A store with an outbox: both the order and the inventory store are one."""

    def unit_of_work(self) -> _OutboxUnitOfWork: ...


@attrs.frozen
class Backlog:
    """What waits in an outbox: ``pending`` events (counted up to the bound asked for) and
    when the oldest of them happened (`None`: nothing waits)."""

    pending: int
    oldest: datetime | None


class BacklogReport(Protocol):
    """An optional capability of an `OutboxRepository`: the backlog without reading the
    events (a count and the first one's time; the SQL store's is two index reads)."""

    def backlog(self, *, most: int) -> Backlog: ...


#: how many events `outbox_backlog` reads whole from an outbox without ``backlog()``
_READ_AT_MOST = 1000


def outbox_backlog(store: OutboxStore, *, most: int = 100_000) -> Backlog:
    """How many events wait in ``store``'s outbox (up to ``most``) and the oldest's time,
    for dashboards and metrics. Uses the outbox's ``backlog()`` when it has one (the
    SQLAlchemy and in-memory stores do); otherwise reads the pending events themselves, at
    most 1,000 (the count then stops there)."""
    with store.unit_of_work() as uow:
        outbox = uow.outbox
        report = getattr(outbox, "backlog", None)
        if callable(report):
            found: Backlog = report(most=most)
            return found
        waiting = outbox.pending(limit=min(most, _READ_AT_MOST))
        return Backlog(len(waiting), waiting[0].occurred_at if waiting else None)


class EventPublishFailed(CommerceError):
    """The publisher could not hand the events over; the relay tries again later."""

    code = "event-publish-failed"


class EventPublisher(Protocol):
    """Where the relay sends events. `publish` returns only once every event is accepted
    (a broker's confirm), so what it returns for is never lost; it raises
    `EventPublishFailed` otherwise."""

    def publish(self, events: Sequence[DomainEvent]) -> None: ...
    def close(self) -> None: ...


EventHandler = Callable[[DomainEvent], None]


class InProcessPublisher:
    """Delivers events to handlers in this process, synchronously, by type pattern
    (``"order.*"``, ``"stock.adjusted"``, ``"*"``). A handler that raises makes the batch
    fail, so the relay delivers it again (to every handler: make them idempotent, e.g. with
    `deduplicated`)."""

    def __init__(self) -> None:
        self._handlers: list[tuple[str, EventHandler]] = []

    @classmethod
    def from_url(cls, url: str) -> InProcessPublisher:
        """``memory://``: the entry point of the default publisher."""
        return cls()

    def subscribe(self, pattern: str, handler: EventHandler) -> None:
        self._handlers.append((pattern, handler))

    def publish(self, events: Sequence[DomainEvent]) -> None:
        for event in events:
            for pattern, handler in self._handlers:
                if fnmatch.fnmatchcase(event.type, pattern):
                    try:
                        handler(event)
                    except Exception as exc:
                        raise EventPublishFailed(
                            f"handler {getattr(handler, '__name__', handler)!r} failed on "
                            f"{event.type} {event.id}: {exc}") from exc

    def close(self) -> None:
        self._handlers.clear()


def publisher_from_url(url: str) -> EventPublisher:
    """The publisher registered for the URL's scheme in ``commerce_core.event_publishers``:
    ``memory://`` (in-process) here, ``amqp://`` with ``commerce-core-rabbitmq``."""
    publisher: EventPublisher = load_adapter(EVENT_PUBLISHERS, url)
    return publisher


class SeenEvents(Protocol):
    """Ids of events a consumer has applied. ``add`` returns false if it was there."""

    def add(self, event_id: str) -> bool: ...


class _RecentIds:
    """The last ``size`` event ids, in memory: enough against a relay's redelivery, which
    repeats at most one batch. Keep ids in the consumer's own database to survive restarts."""

    def __init__(self, size: int = 100_000) -> None:
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def add(self, event_id: str) -> bool:
        with self._lock:
            if event_id in self._ids:
                return False
            self._ids[event_id] = None
            if len(self._ids) > self._size:
                self._ids.popitem(last=False)
            return True


def deduplicated(handler: EventHandler, seen: SeenEvents | None = None) -> EventHandler:
    """``handler``, skipping events whose id it has already been given."""
    ids = seen if seen is not None else _RecentIds()

    def handle(event: DomainEvent) -> None:
        if ids.add(event.id):
            handler(event)

    handle.__name__ = getattr(handler, "__name__", "handler")
    return handle


#: Events a relay hands the publisher at a time, checking its lease in between.
_CHUNK = 10

#: How often an idle relay with a retention purges old events.
_PURGE_EVERY = timedelta(minutes=1)


def relay_owner() -> str:
    """A lease owner unique to this process: its host, its pid and some randomness."""
    return f"{socket.gethostname()}:{os.getpid()}:{new_id('relay')[-6:]}"


class OutboxRelay:
    """Moves a store's outbox to a publisher: claim the lease, read a batch in order,
    publish it, record it as published.

    One relay per store publishes at a time (a lease row in the store, renewed every
    batch), so events leave in the order they were written; run one in every worker and
    the others stand by, taking over when a lease lapses (``lease``). A relay killed after
    publishing and before recording it leaves the batch pending: the next one sends it
    again, which is why delivery is *at least once*.
    """

    def __init__(
        self, store: OutboxStore, publisher: EventPublisher, *, name: str,
        clock: Clock = system_clock, batch_size: int = 100,
        lease: timedelta = timedelta(seconds=30), owner: str | None = None,
        retention: timedelta | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.store = store
        self.publisher = publisher
        self.name = name
        self.clock = clock
        self.batch_size = batch_size
        self.lease = lease
        self.owner = owner or relay_owner()
        #: Published events older than this are deleted when the relay has nothing to send
        #: (``None``: kept until someone calls `OutboxRepository.purge`).
        self.retention = retention
        self._next_purge: datetime | None = None

    def _purge(self, now: datetime) -> None:
        if self.retention is None or (self._next_purge is not None and now < self._next_purge):
            return
        self._next_purge = now + _PURGE_EVERY
        with self.store.unit_of_work() as uow:
            uow.outbox.purge(published_before=now - self.retention, limit=1000)
            uow.commit()

    def run_once(self) -> int:
        """Publish one batch if there is one and this relay holds (or can take) the lease;
        how many events. An idle run only reads: no lease is written while there is nothing
        to publish, and old events are purged at most once a minute."""
        now = self.clock()
        with self.store.unit_of_work() as uow:
            idle = not uow.outbox.pending(limit=1)
        if idle:
            self._purge(now)
            return 0
        until = now + self.lease
        try:
            with self.store.unit_of_work() as uow:
                holds = uow.outbox.claim(self.name, owner=self.owner, now=now, until=until)
                events = uow.outbox.pending(limit=self.batch_size) if holds else []
                uow.commit()
        except Conflict:  # two relays creating the lease at once: the other one has it
            events = []
        if not events:
            return 0
        sent: list[DomainEvent] = []
        for start in range(0, len(events), _CHUNK):
            if self.clock() >= until:
                # the lease lapsed while publishing (a slow broker): another relay may hold
                # it now and be sending these same events; going on would interleave the two
                log.warning("outbox relay %s: lease lapsed after %d of %d events; stopping",
                            self.name, len(sent), len(events))
                break
            chunk = events[start:start + _CHUNK]
            self.publisher.publish(chunk)
            sent.extend(chunk)
        if not sent:
            return 0
        with self.store.unit_of_work() as uow:
            renewed = self.clock()
            # marked only while the lease is still this relay's: one that lost it leaves the
            # events to the relay that took over (which sends them again: at least once)
            if not uow.outbox.claim(self.name, owner=self.owner, now=renewed,
                                    until=renewed + self.lease):
                log.warning("outbox relay %s: another relay took over; %d events left to it",
                            self.name, len(sent))
                return 0
            uow.outbox.mark_published([e.id for e in sent], at=renewed)
            uow.commit()
        return len(sent)

    def drain(self) -> int:
        """Publish until nothing is pending (or the lease is someone else's)."""
        total = 0
        while count := self.run_once():
            total += count
        return total

    def run(self, stop: threading.Event, *, idle: float = 0.2) -> None:
        """Relay until ``stop`` is set: back to back while there is work, every ``idle``
        seconds when there is none, and after any failure (logged: a broker or database
        down) a second later. Leases assume the hosts' clocks agree to well within
        ``lease``."""
        while not stop.is_set():
            try:
                busy = self.run_once() == self.batch_size
            except Exception:  # a relay outlives any one failure (logged)
                log.exception("outbox relay %s: publishing failed; trying again", self.name)
                busy = False
                stop.wait(max(idle, 1.0))
            if not busy:
                stop.wait(idle)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.publisher.close()

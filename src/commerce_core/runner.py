"""The platform's background work, on threads of its own, started and stopped by the host:
recovery sweeps (which also expire reservations and apply the retention of failed orders
and idempotency records), the outbox relays, and outbound webhooks.

    runner = BackgroundRunner(platform, publishers=lambda: publisher_from_url(url))
    runner.start()          # at the host's start-up
    ...
    runner.stop()           # at its shutdown (or: with BackgroundRunner(...) as runner:)

Safe with many processes and hosts: a sweep leaves every saga touched within ``grace`` to
the process running it, every step it drives is idempotent and guarded by the order's
version, and one relay per store publishes at a time (a lease in the store).
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import timedelta
from types import TracebackType
from typing import Self

from commerce_core.checkout.recovery import RecoveryReport
from commerce_core.events import (
    DomainEvent,
    EventHandler,
    EventPublisher,
    InProcessPublisher,
    OutboxRelay,
    relay_owner,
)
from commerce_core.platform import Platform
from commerce_core.webhooks import WebhookService

__all__ = ["BROKEN_AFTER", "MAX_ATTEMPTS", "MAX_DEAD_LETTERS", "BackgroundRunner"]

log = logging.getLogger("commerce_core.runner")

#: How many times a subscriber is given an event it keeps failing on before it is set aside.
MAX_ATTEMPTS = 5
#: Events set aside in a row after which a subscriber counts as broken (later failures are
#: set aside at once, until it succeeds again).
BROKEN_AFTER = 3
#: Dead letters a runner keeps (the oldest go first).
MAX_DEAD_LETTERS = 1_000

#: How long published events stay in the outbox tables by default.
EVENT_RETENTION = timedelta(days=7)


class _Patient:
    """A subscriber that gets an event it fails on again, up to `MAX_ATTEMPTS` times, then
    sets it aside (a dead letter) and lets the batch go on."""

    def __init__(self, handler: EventHandler,
                 dead: collections.deque[tuple[str, DomainEvent, str]], *,
                 max_attempts: int, broken_after: int) -> None:
        self.handler = handler
        self.dead = dead
        self.max_attempts = max_attempts
        self.broken_after = broken_after
        self.failures: dict[str, int] = {}
        #: events set aside for this handler (the last few thousand): a batch delivered
        #: again for another handler does not give them to it again
        self.aside: dict[str, None] = {}
        #: events set aside in a row, without a success between: from `BROKEN_AFTER` on, the
        #: handler is broken (a mail server down for good) and each next failure is set
        #: aside at once, so that the outbox is not held 5 tries per event
        self.in_a_row = 0
        self.__name__ = getattr(handler, "__name__", type(handler).__name__)

    def __call__(self, event: DomainEvent) -> None:
        if event.id in self.aside:
            return  # set aside already (a dead letter): not again
        try:
            self.handler(event)
        except Exception as exc:
            failed = self.failures.get(event.id, 0) + 1
            if failed < self.max_attempts and self.in_a_row < self.broken_after:
                self.failures[event.id] = failed
                raise
            self.failures.pop(event.id, None)
            self.in_a_row += 1
            self.aside[event.id] = None
            while len(self.aside) > 10_000:
                del self.aside[next(iter(self.aside))]
            self.dead.append((self.__name__, event, repr(exc)))
            log.error("subscriber %s failed %d times on %s %s; set aside (dead letter): %r",
                      self.__name__, failed, event.type, event.id, exc)
        else:
            self.failures.pop(event.id, None)
            self.in_a_row = 0


class BackgroundRunner:
    """Recovery sweeps every ``recovery_interval`` (each takes on the sagas left untouched
    for ``recovery_grace``, then expires reservations), and, given ``publishers``, one
    outbox relay per store, each with a publisher of its own.

    ``publishers``: makes an `EventPublisher` (called once per store: a broker connection is
    not shared between threads). ``None``, and no `subscribe`: no relays (the host
    publishes, or reads the outbox, itself). ``recover_at_start``: one sweep as soon as it
    starts (with the grace too: in a rolling restart other processes are running
    checkouts). ``max_attempts``, ``broken_after``: when a subscriber's failing events are
    set aside (`subscribe`).

    ``webhooks`` (e.g. ``platform.webhooks``): every event is queued for the endpoints that
    want it (by the relays, never set aside: an event that cannot be queued, the database
    being down, holds its outbox until it can), and what is due is sent every
    ``webhook_interval`` on a thread of its own (`WebhookService.deliver_due`); delivered
    ones past the policy's retention are deleted once an hour.
    """

    def __init__(
        self, platform: Platform, *, recovery_interval: timedelta = timedelta(seconds=30),
        recovery_grace: timedelta = timedelta(seconds=60),
        publishers: Callable[[], EventPublisher] | None = None,
        event_retention: timedelta = EVENT_RETENTION, recover_at_start: bool = True,
        name: str = "commerce", max_attempts: int = MAX_ATTEMPTS,
        broken_after: int = BROKEN_AFTER, webhooks: WebhookService | None = None,
        webhook_interval: timedelta = timedelta(seconds=1),
    ) -> None:
        if recovery_interval <= timedelta(0) or recovery_grace < timedelta(0):
            raise ValueError("recovery_interval must be positive, recovery_grace not negative")
        if max_attempts < 1 or broken_after < 1:
            raise ValueError("max_attempts and broken_after must be at least 1")
        self.max_attempts = max_attempts
        self.broken_after = broken_after
        self.platform = platform
        self.recovery_interval = recovery_interval
        self.recovery_grace = recovery_grace
        self.publishers = publishers
        self.event_retention = event_retention
        self.recover_at_start = recover_at_start
        self.name = name
        #: the relays' lease owner: the same across a stop and a start, so a restarted
        #: runner takes its own lease back at once instead of waiting for it to lapse
        self.owner = f"{name}-{relay_owner()}"
        self._handlers = InProcessPublisher()
        self._subscribed = False
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lingering: list[threading.Thread] = []
        #: events a subscriber failed on `MAX_ATTEMPTS` times, set aside (and logged) so the
        #: others go on: (the handler's name, the event, the last error)
        self.dead_letters: collections.deque[tuple[str, DomainEvent, str]] = collections.deque(
            maxlen=MAX_DEAD_LETTERS)
        self._relays: list[OutboxRelay] = []
        self._lock = threading.Lock()
        #: the last sweep's report (``None`` before the first)
        self.last_report: RecoveryReport | None = None
        #: sweeps that raised (logged), since the start
        self.failed_sweeps = 0
        if webhook_interval <= timedelta(0):
            raise ValueError("webhook_interval must be positive")
        self.webhooks = webhooks
        self.webhook_interval = webhook_interval
        #: webhook passes that raised (logged), since the start
        self.failed_webhook_passes = 0

    @property
    def running(self) -> bool:
        """Whether any of its threads is alive (one that did not stop in time included)."""
        return any(thread.is_alive() for thread in (*self._threads, *self._lingering))

    def start(self) -> None:
        """Start the threads (daemon threads: a host that forgets `stop` still exits).
        Starting a runner that runs is refused."""
        with self._lock:
            self._lingering = [t for t in self._lingering if t.is_alive()]
            if self._threads or self._lingering:
                # a thread that did not stop in time would run beside the new ones, under
                # the same lease: two relays publishing the same events
                raise RuntimeError("the runner is running already (or a thread of its last "
                                   "run has not stopped yet); stop it first")
            self._stop.clear()
            self._spawn(f"{self.name}-recovery", self._sweep_loop)
            if self.webhooks is not None:
                self._spawn(f"{self.name}-webhooks", self._webhook_loop(self.webhooks))
            if self.publishers is not None or self._subscribed or self.webhooks is not None:
                self._relays = self.platform.outbox_relays(
                    self._publisher, retention=self.event_retention, owner=self.owner)
                for relay in self._relays:
                    self._spawn(f"{self.name}-relay-{relay.name}", self._relay_loop(relay))

    def subscribe(self, pattern: str, handler: EventHandler) -> None:
        """Call ``handler(event)`` for every event whose type matches ``pattern``
        (``"order.*"``, ``"return.refunded"``, ``"*"``), in this process, once its change
        is committed, in the order of its store's outbox: at least once (a handler that
        raises makes its batch be delivered again, to every handler, a second later: make
        handlers idempotent, e.g. with `commerce_core.events.deduplicated`). An event a
        handler fails on `MAX_ATTEMPTS` times is set aside for that handler
        (`dead_letters`, logged at ERROR), so that one poison event cannot hold up the
        store's outbox for good, and is not given to it again; after `BROKEN_AFTER` events
        set aside in a row, until it succeeds once, each event it fails on is set aside at
        the first failure (it is broken: the outbox goes on). The last `MAX_DEAD_LETTERS`
        are kept.
        Subscribe before `start`; with ``publishers`` too, each batch goes to the broker
        first (once: a batch delivered again for a handler is not sent to the broker again
        by this runner)."""
        if self._threads:
            raise RuntimeError("subscribe before the runner starts")
        self._handlers.subscribe(pattern, _Patient(
            handler, self.dead_letters, max_attempts=self.max_attempts,
            broken_after=self.broken_after))
        self._subscribed = True

    def _publisher(self) -> EventPublisher:
        """What a relay publishes to: the broker's publisher, then the handlers."""
        own = self.publishers() if self.publishers is not None else None
        return _Fanout(own, self._handlers if self._subscribed else None, self.webhooks)

    def stop(self, timeout: float = 10.0) -> None:
        """Ask every thread to stop and wait up to ``timeout`` seconds for each (a sweep or
        a batch in progress finishes first); their publishers are closed."""
        with self._lock:
            self._stop.set()
            threads, self._threads = self._threads, []
        for thread in threads:
            thread.join(timeout)
            if thread.is_alive():
                log.warning("background thread %s did not stop within %s s", thread.name,
                            timeout)
                self._lingering.append(thread)

    def sweep(self) -> RecoveryReport:
        """One recovery sweep now, on the caller's thread."""
        report = self.platform.checkout.recover(grace=self.recovery_grace)
        self.last_report = report
        if report.failed:
            log.error("recovery could not finish %d order(s): %s", len(report.failed),
                      report.failed)
        elif report.examined or report.expired_reservations:
            log.info("recovery: %s", report)
        return report

    def _spawn(self, name: str, target: Callable[[], None]) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _sweep_loop(self) -> None:
        wait = 0.0 if self.recover_at_start else self.recovery_interval.total_seconds()
        while not self._stop.wait(wait):
            wait = self.recovery_interval.total_seconds()
            try:
                self.sweep()
            except Exception:  # a sweep outlives any one failure (a database down)
                self.failed_sweeps += 1
                log.exception("recovery sweep failed; trying again in %s s", wait)

    def _webhook_loop(self, webhooks: WebhookService) -> Callable[[], None]:
        def run() -> None:
            purged = float("-inf")
            wait = 0.0
            try:
                while not self._stop.wait(wait):
                    wait = self.webhook_interval.total_seconds()
                    try:
                        report = webhooks.deliver_due()
                        if report.delivered:
                            wait = 0.05  # progress: more may be due (the budget ended it)
                        if time.monotonic() - purged > 3600:
                            purged = time.monotonic()
                            webhooks.purge()
                    except Exception:  # outlives a database that is down
                        self.failed_webhook_passes += 1
                        log.exception("webhook delivery pass failed; trying again in %s s",
                                      wait)
            finally:
                webhooks.close()
        return run

    def _relay_loop(self, relay: OutboxRelay) -> Callable[[], None]:
        def run() -> None:
            with relay:
                relay.run(self._stop)
        return run

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


class _Fanout:
    """A broker's publisher, then the webhooks' queue, then the subscribed handlers (shared
    by the relays, so their closing leaves the subscriptions in place for the next start).
    A batch delivered again because a handler failed is not sent to the broker a second
    time. The webhooks queue a batch in one go (one read of the endpoints, one transaction;
    what is queued already is skipped) and are never set aside: an event not queued would
    be lost to every endpoint, so a batch that cannot be queued (the order database down)
    waits in the outbox."""

    def __init__(self, broker: EventPublisher | None, handlers: InProcessPublisher | None,
                 webhooks: WebhookService | None = None) -> None:
        self.broker = broker
        self.handlers = handlers
        self.webhooks = webhooks
        self._sent: dict[str, None] = {}  # ids the broker accepted, the last few thousand

    def publish(self, events: Sequence[DomainEvent]) -> None:
        if self.broker is not None:
            fresh = [event for event in events if event.id not in self._sent]
            if fresh:
                self.broker.publish(fresh)
                self._sent.update(dict.fromkeys(event.id for event in fresh))
                while len(self._sent) > 10_000:
                    del self._sent[next(iter(self._sent))]
        if self.webhooks is not None:
            self.webhooks.enqueue_all(events)
        if self.handlers is not None:
            self.handlers.publish(events)

    def close(self) -> None:
        if self.broker is not None:
            self.broker.close()

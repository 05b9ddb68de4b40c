"""The metric families, the core's telemetry turned into them, and their exposition.

Every label is a small closed set (a route's template, a step, an operation, an outcome, a
store): never an id. In a server of several worker processes, set
``PROMETHEUS_MULTIPROC_DIR`` before this module is imported in any of them (the reference
server does): each worker then writes its values to that directory, and the exposition of
any worker sums them all."""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from commerce_core.events import OutboxStore, outbox_backlog
from commerce_core.telemetry import Attributes

__all__ = ["CONTENT_TYPE_LATEST", "Metrics", "OutboxBacklog", "PrometheusTelemetry"]

log = logging.getLogger("commerce_core.prometheus")

#: seconds: around the seed's objectives (100 ms gateway to service, 500 ms to the
#: payment provider), so that a histogram answers "what share took longer than that"
FAST = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
PROVIDER = (0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 2.0, 5.0, 10.0, 30.0)


#: the label values known in advance (`commerce_core.telemetry.EVENTS`), made at 0 at start
RECOVERY_RESULTS = ("finished", "unfinished", "failed")
RATE_LIMITS = ("requests", "checkout", "auth_failures")
PROVIDER_OPERATIONS = ("authorize", "capture", "void", "refund", "find_authorization",
                       "list_refunds")
PROVIDER_OUTCOMES = ("ok", "declined", "unavailable", "error")
CHECKOUT_OUTCOMES = ("confirmed", "insufficient-stock", "payment-declined",
                     "payment-unavailable")


def multiprocess() -> bool:
    """Whether values are written for several processes (``PROMETHEUS_MULTIPROC_DIR``)."""
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


class Metrics:
    """The families of one process (one registry: several apps in one process, as in tests,
    do not collide)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.http_requests = Counter(
            "commerce_http_requests", "HTTP requests answered, by route template, method "
            "and status", ["route", "method", "status"], registry=r)
        self.http_duration = Histogram(
            "commerce_http_request_duration_seconds", "Time to answer an HTTP request, by "
            "route template and method", ["route", "method"], buckets=FAST, registry=r)
        self.checkouts = Counter(
            "commerce_checkouts", "Place-order commands, by outcome (confirmed, or the "
            "error's code)", ["outcome"], registry=r)
        self.checkout_duration = Histogram(
            "commerce_checkout_duration_seconds", "Time a place-order command took, in the "
            "service", ["outcome"], buckets=FAST, registry=r)
        self.saga_steps = Histogram(
            "commerce_saga_step_duration_seconds", "Time a saga step took, by the step it "
            "started at", ["step"], buckets=FAST, registry=r)
        self.provider_calls = Counter(
            "commerce_provider_calls", "Calls to the payment provider (each try), by "
            "operation and outcome", ["operation", "outcome"], registry=r)
        self.provider_duration = Histogram(
            "commerce_provider_call_duration_seconds", "Time a call to the payment provider "
            "took, by operation", ["operation"], buckets=PROVIDER, registry=r)
        self.stockouts = Counter(
            "commerce_stockouts", "Reservations refused for lack of stock", registry=r)
        self.reservations_expired = Counter(
            "commerce_reservations_expired", "Reservations released by an expiry sweep",
            registry=r)
        self.recovery = Counter(
            "commerce_recovery_orders", "Orders a recovery sweep handled, by result "
            "(finished, unfinished, failed)", ["result"], registry=r)
        self.rate_limited = Counter(
            "commerce_rate_limited", "Requests refused by a rate limit (429), by limit",
            ["limit"], registry=r)
        self.pool_in_use = Gauge(
            "commerce_db_pool_connections_in_use", "Database connections checked out of "
            "the pool, by store (summed over the workers)", ["store"], registry=r,
            multiprocess_mode="livesum")
        self._extra: list[Collector] = []
        # the closed label sets exist at 0 from the start: a series that first appears at 1
        # (prometheus-client makes a child at its first increment) has no earlier sample,
        # so increase() and rate() miss the first failure an alert is there for
        for result in RECOVERY_RESULTS:
            self.recovery.labels(result)
        for limit in RATE_LIMITS:
            self.rate_limited.labels(limit)
        for operation in PROVIDER_OPERATIONS:
            self.provider_duration.labels(operation)
            for outcome in PROVIDER_OUTCOMES:
                self.provider_calls.labels(operation, outcome)
        for outcome in CHECKOUT_OUTCOMES:
            self.checkouts.labels(outcome)
            self.checkout_duration.labels(outcome)

    def add(self, collector: Collector) -> None:
        """A collector asked at each scrape (the outbox backlog): by the scraping worker
        alone, for figures that are the same whichever worker asks."""
        self.registry.register(collector)
        self._extra.append(collector)

    def exposition(self) -> bytes:
        """The text exposition: in multiprocess mode every worker's values summed, and this
        worker's scrape-time collectors."""
        if not multiprocess():
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        for collector in self._extra:
            registry.register(collector)
        return generate_latest(registry)

    def watch_pool(self, engine: Any, store: str) -> None:
        """Count ``engine``'s (an SQLAlchemy engine) connections in use as ``store``'s."""
        from sqlalchemy import event  # noqa: PLC0415 - only for stores that have a pool

        gauge = self.pool_in_use.labels(store)
        event.listen(engine, "checkout", lambda *_: gauge.inc())
        event.listen(engine, "checkin", lambda *_: gauge.dec())


class PrometheusTelemetry:
    """The core's `Telemetry` as Prometheus metrics (spans are left to a tracer)."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        m = metrics
        self._record: dict[str, Callable[[int, float | None, dict[str, str]], None]] = {
            "checkout": lambda n, s, labels: self._timed(
                m.checkouts.labels(labels.get("outcome", "?")),
                m.checkout_duration.labels(labels.get("outcome", "?")), n, s),
            "saga_step": lambda n, s, labels: self._timed(
                None, m.saga_steps.labels(labels.get("step", "?")), n, s),
            "provider_call": lambda n, s, labels: self._timed(
                m.provider_calls.labels(labels.get("operation", "?"),
                                        labels.get("outcome", "?")),
                m.provider_duration.labels(labels.get("operation", "?")), n, s),
            "stock_out": lambda n, s, labels: m.stockouts.inc(n),
            "reservations_expired": lambda n, s, labels: m.reservations_expired.inc(n),
            "recovery": lambda n, s, labels: m.recovery.labels(
                labels.get("result", "?")).inc(n),
            "rate_limited": lambda n, s, labels: m.rate_limited.labels(
                labels.get("limit", "?")).inc(n),
        }

    @staticmethod
    def _timed(counter: Any, histogram: Any, count: int, seconds: float | None) -> None:
        if counter is not None:
            counter.inc(count)
        if seconds is not None:
            histogram.observe(seconds)

    @contextlib.contextmanager
    def span(self, name: str, attributes: Attributes) -> Iterator[None]:
        yield

    def record(self, event: str, *, count: int = 1, seconds: float | None = None,
               **labels: str) -> None:
        handle = self._record.get(event)
        if handle is None:
            return
        try:
            handle(count, seconds, labels)
        except Exception:  # a metric must never fail the work it measures
            log.exception("metrics: recording %s failed", event)


class OutboxBacklog(Collector):
    """At each scrape: how many events wait in each store's outbox (counted up to
    ``most``), and how old the oldest is (`commerce_core.events.outbox_backlog`: a count
    and one row's time with the SQL stores, no event read whole)."""

    def __init__(self, stores: Iterable[tuple[str, OutboxStore]], *, most: int = 100_000,
                 clock: Callable[[], float] = time.time) -> None:
        self.stores = list(stores)
        self.most = most
        self.clock = clock

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterable[Metric]:
        pending = GaugeMetricFamily("commerce_outbox_pending", "Events waiting in a store's "
                                    "outbox (counted up to a bound)", labels=["store"])
        age = GaugeMetricFamily("commerce_outbox_oldest_age_seconds", "Age of the oldest "
                                "event waiting in a store's outbox (0: none)",
                                labels=["store"])
        for name, store in self.stores:
            try:
                backlog = outbox_backlog(store, most=self.most)
            except Exception:  # a store down shows as no figure, not as a failed scrape
                log.warning("metrics: the %s store's outbox cannot be read", name,
                            exc_info=True)
                continue
            pending.add_metric([name], backlog.pending)
            oldest = None if backlog.oldest is None else backlog.oldest.timestamp()
            age.add_metric([name], 0.0 if oldest is None else max(0.0, self.clock() - oldest))
        yield pending
        yield age

"""Outbound webhooks: endpoints managed by an admin, every event of the outbox queued for
the endpoints that want it, and sent, signed, with retries and a dead letter.

Queueing and sending are apart, so that an endpoint that is down never holds up the outbox
(or another endpoint): `WebhookService.enqueue` is an outbox subscriber (fast, one write),
and `WebhookService.deliver_due` sends what is due (`commerce_core.runner.BackgroundRunner`
runs both). Delivery is at least once, in order per aggregate and endpoint; the receiver
deduplicates by the event's ``id``.
"""

from __future__ import annotations

import logging
import threading
import time
import urllib.parse
from collections.abc import Callable, Collection, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import TypeVar

import attrs
import tenacity

from commerce_core._validate import Errors, check_identifier
from commerce_core.clock import Clock, new_id, system_clock
from commerce_core.errors import FieldError, InvalidInput, NotFound
from commerce_core.events import DomainEvent, relay_owner
from commerce_core.pagination import Page, check_limit, decode_cursor, page_of
from commerce_core.telemetry import clean_carrier
from commerce_core.webhooks.model import (
    EVENT_TYPES,
    SIGNATURE_HEADER,
    Delivery,
    DeliveryStatus,
    WebhookEndpoint,
    body_of,
    sign,
)
from commerce_core.webhooks.ports import DeliveryFailed, WebhookStore, WebhookTransport
from commerce_core.webhooks.transport import HttpTransport

__all__ = ["DeliveryReport", "WebhookPolicy", "WebhookService"]

log = logging.getLogger("commerce_core.webhooks")

MAX_URL = 2048
MAX_EVENTS = 50
MAX_REPLAY = 100
_KINDS = sorted({t.split(".")[0] for t in EVENT_TYPES})


@attrs.frozen(kw_only=True)
class WebhookPolicy:
    """How deliveries are tried: ``max_attempts`` in all, the n-th failure waiting
    ``first_wait * 2**(n-1)`` (at most ``max_wait``) plus up to ``jitter`` (tenacity's
    exponential wait), then the delivery is failed for good (a dead letter, until replayed).
    The defaults try 10 times over about an hour and a half. Each pass takes at most
    ``batch`` deliveries, ``per_endpoint`` of an endpoint, sent on ``workers`` threads (one
    endpoint's deliveries one after another, on one thread), each leased for ``lease``
    against other processes; a pass starts no attempt after ``pass_budget`` (one endpoint
    that answers slowly delays the others' next pass by at most an attempt's timeout).
    ``retention``: how long delivered ones stay in the log."""

    max_attempts: int = attrs.field(default=10, validator=attrs.validators.ge(1))
    first_wait: timedelta = timedelta(seconds=10)
    max_wait: timedelta = timedelta(hours=1)
    jitter: timedelta = timedelta(seconds=1)
    batch: int = attrs.field(default=100, validator=attrs.validators.ge(1))
    per_endpoint: int = attrs.field(default=10, validator=attrs.validators.ge(1))
    workers: int = attrs.field(default=4, validator=attrs.validators.ge(1))
    lease: timedelta = timedelta(minutes=5)
    pass_budget: timedelta = timedelta(seconds=5)
    retention: timedelta = timedelta(days=30)

    def next_wait(self, failures: int) -> timedelta | None:
        """How long to wait after the ``failures``-th failed attempt; ``None``: no more."""
        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.max_attempts),
            wait=tenacity.wait_exponential(multiplier=self.first_wait.total_seconds(),
                                           max=self.max_wait.total_seconds())
            + tenacity.wait_random(0, self.jitter.total_seconds()))
        state = tenacity.RetryCallState(retrying, None, (), {})
        state.attempt_number = failures
        if retrying.stop(state):
            return None
        return timedelta(seconds=retrying.wait(state))


@attrs.frozen
class DeliveryReport:
    """One pass of `WebhookService.deliver_due`: deliveries sent and answered 2xx, failed
    and to be tried again, failed for good (dead letters), and put back untried because
    their endpoint had just failed."""

    delivered: int = 0
    retrying: int = 0
    dead: int = 0
    postponed: int = 0


def _check_url(errors: Errors, url: object) -> None:
    if not isinstance(url, str) or not url or len(url) > MAX_URL or not url.isprintable() \
            or not url.isascii() or any(c.isspace() for c in url):
        errors.add("url", f"must be an absolute http or https URL of at most {MAX_URL} "
                   "ASCII characters, without spaces")
        return
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError:
        errors.add("url", "is not a URL")
        return
    if not url.startswith(("http://", "https://")) or not parts.hostname:
        errors.add("url", "must be an absolute http:// or https:// URL")
    elif parts.port == 0:
        errors.add("url", "must not name port 0")
    elif parts.username is not None or parts.password is not None:
        errors.add("url", "must not carry a user name or password (sign with the secret)")
    elif parts.fragment:
        errors.add("url", "must not have a fragment")


def _check_delivery_ids(given: object) -> list[str]:
    """Delivery ids as a list (``InvalidInput`` for anything else, or more than 100)."""
    if isinstance(given, str | bytes) or not isinstance(given, Collection) \
            or len(given) > MAX_REPLAY:
        raise InvalidInput("invalid delivery ids", [FieldError(
            "delivery_ids", f"must be a list of at most {MAX_REPLAY} delivery ids")])
    errors = Errors()
    ids: list[object] = list(given)
    for i, found in enumerate(ids):
        if not isinstance(found, str) or not 1 <= len(found) <= 64 or not found.isprintable() \
                or not found.isascii():
            errors.add(f"delivery_ids[{i}]", "is not a delivery id")
    errors.raise_if_any("invalid delivery ids")
    return [str(found) for found in ids]


def _check_secret(errors: Errors, secret: object) -> None:
    if not isinstance(secret, str) or not 16 <= len(secret) <= 255 or not secret.isascii() \
            or not secret.isprintable() or " " in secret:
        errors.add("secret", "must be 16 to 255 printable ASCII characters without spaces "
                   "(e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))')")


def _check_events(errors: Errors, events: object) -> tuple[str, ...]:
    if isinstance(events, str) or not isinstance(events, Sequence) \
            or not 1 <= len(events) <= MAX_EVENTS:
        errors.add("events", f"must be a list of 1 to {MAX_EVENTS} event types")
        return ()
    known = set(EVENT_TYPES) | {f"{kind}.*" for kind in _KINDS} | {"*"}
    for i, pattern in enumerate(events):
        if not isinstance(pattern, str) or pattern not in known:
            errors.add(f"events[{i}]", "must be an event type (" + ", ".join(EVENT_TYPES)
                       + "), a kind's (" + ", ".join(f"{k}.*" for k in _KINDS)
                       + ") or * (every event)")
    return tuple(dict.fromkeys(e for e in events if isinstance(e, str)))


T = TypeVar("T")


def _found(kind: str, key: object, get: Callable[[str], T | None]) -> T:
    """What ``get`` finds under ``key``, or `NotFound` (an id no store can hold, a NUL or a
    lone surrogate, is not looked up)."""
    found = get(key) if isinstance(key, str) and key.isprintable() else None
    if found is None:
        raise NotFound(kind, str(key))
    return found


class WebhookService:
    """Manage endpoints, queue events for them, send what is due, replay dead letters.

    ``transport``: how a request is sent (`HttpTransport` by default); ``policy``: the
    retries (`WebhookPolicy`); ``clock``: the time (the signature's timestamp is the wall
    clock's, as the receiver checks it against its own)."""

    def __init__(self, store: WebhookStore, *, transport: WebhookTransport | None = None,
                 clock: Clock = system_clock, policy: WebhookPolicy | None = None,
                 wall_clock: Callable[[], float] | None = None) -> None:
        self.store = store
        self.transport = transport or HttpTransport()
        self.clock = clock
        self.policy = policy or WebhookPolicy()
        self.wall_clock = wall_clock or time.time
        self.owner = f"webhooks-{relay_owner()}"
        self._pool: ThreadPoolExecutor | None = None
        #: how long each endpoint's last attempt took (seconds), to serve fast ones first
        self._slowness: dict[str, float] = {}
        self._slowness_lock = threading.Lock()

    # -- endpoints ------------------------------------------------------------------------

    def put_endpoint(self, endpoint_id: str, *, url: str, secret: str,
                     events: Sequence[str], active: bool = True) -> tuple[WebhookEndpoint, bool]:
        """Create or replace an endpoint; the endpoint and whether it was created. Every
        problem of the input at once as `InvalidInput`, nothing changed."""
        errors = Errors()
        check_identifier(errors, "id", endpoint_id)
        _check_url(errors, url)
        _check_secret(errors, secret)
        patterns = _check_events(errors, events)
        given: object = active
        if not isinstance(given, bool):
            errors.add("active", "must be true or false")
        errors.raise_if_any("invalid webhook endpoint")
        now = self.clock()
        endpoint = WebhookEndpoint(id=endpoint_id, url=url, secret=secret, events=patterns,
                                   active=active, created_at=now, updated_at=now)
        created = self.store.put_endpoint(endpoint)
        found = self.store.get_endpoint(endpoint_id)
        return (found or endpoint), created

    def endpoint(self, endpoint_id: str) -> WebhookEndpoint:
        """The endpoint, or `NotFound`."""
        return _found("webhook endpoint", endpoint_id, self.store.get_endpoint)

    def endpoints(self) -> Sequence[WebhookEndpoint]:
        return self.store.endpoints()

    def deliveries(self, endpoint_id: str, *, limit: int = 50,
                   cursor: str | None = None) -> Page[Delivery]:
        """The endpoint's delivery log, newest first, a page at a time."""
        check_limit(limit)
        key = decode_cursor(cursor)
        if key is not None and not (key.isascii() and key.isdigit() and len(key) < 19):
            raise InvalidInput("invalid cursor", [FieldError("cursor", "not a cursor")])
        self.endpoint(endpoint_id)
        found = self.store.deliveries(endpoint_id, before=None if key is None else int(key),
                                      limit=limit + 1)
        last = found[min(limit, len(found)) - 1] if found else None
        return page_of(found, limit, None if last is None else str(last.position))

    def delivery(self, delivery_id: str) -> Delivery:
        """The delivery, or `NotFound`."""
        return _found("webhook delivery", delivery_id, self.store.get_delivery)

    # -- queueing -------------------------------------------------------------------------

    def enqueue(self, event: DomainEvent) -> int:
        """Queue ``event`` for every active endpoint that wants it (an outbox subscriber:
        an event given again is not queued twice); how many deliveries were new."""
        return self.enqueue_all([event])

    def enqueue_all(self, events: Iterable[DomainEvent]) -> int:
        endpoints = [e for e in self.store.endpoints() if e.active]
        now = self.clock()
        deliveries = [
            Delivery(id=new_id("whd"), endpoint_id=endpoint.id, event_id=event.id,
                     event_type=event.type,
                     aggregate=f"{event.aggregate_type}:{event.aggregate_id}",
                     body=body_of(event), created_at=now, next_attempt_at=now,
                     trace=clean_carrier(event.trace))
            for event in events for endpoint in endpoints if endpoint.wants(event.type)]
        return self.store.enqueue(deliveries) if deliveries else 0

    # -- sending --------------------------------------------------------------------------

    def deliver_due(self) -> DeliveryReport:
        """Send what is due now (one pass). Each endpoint with something due is served on
        one of the policy's ``workers`` threads, side by side: its deliveries one after
        another, then its next ones as they become due (an aggregate's next event once the
        one before is delivered), until one fails (the others are put back untried, for the
        next pass), nothing of it is due, or the pass's ``pass_budget`` is spent (no attempt
        starts after it: what is left is put back untried). The endpoints whose last attempt
        was fastest are served first, so that with more slow endpoints than workers a
        healthy one is not queued behind them; a pass lasts at most the budget and one
        attempt's timeout."""
        deadline = time.monotonic() + self.policy.pass_budget.total_seconds()
        now = self.clock()
        claimed = self.store.claim_due(
            now=now, owner=self.owner, until=now + self.policy.lease,
            limit=self.policy.batch, per_endpoint=self.policy.per_endpoint)
        by_endpoint: dict[str, list[Delivery]] = {}
        for delivery in claimed:
            by_endpoint.setdefault(delivery.endpoint_id, []).append(delivery)
        # the endpoints that answered fast last go first: with more slow endpoints than
        # workers, a healthy one is not queued behind them
        groups = sorted(by_endpoint.values(), key=lambda g: self._slowness.get(
            g[0].endpoint_id, 0.0))
        if len(groups) <= 1 or self.policy.workers == 1:
            reports = [self._serve(group, deadline) for group in groups]
        else:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.policy.workers,
                                                thread_name_prefix="commerce-webhooks")
            reports = list(self._pool.map(self._serve, groups, [deadline] * len(groups)))
        return DeliveryReport(*(sum(report[i] for report in reports) for i in range(4)))

    def _serve(self, group: list[Delivery], deadline: float) -> tuple[int, int, int, int]:
        """One endpoint's part of a pass: (delivered, to retry, failed for good, put back
        untried)."""
        endpoint_id = group[0].endpoint_id
        total = [0, 0, 0, 0]
        while group:
            counts = self._send_all(group, deadline)
            for i in range(4):
                total[i] += counts[i]
            if counts[1] or counts[2] or counts[3] or total[0] >= self.policy.batch \
                    or time.monotonic() > deadline:
                break
            now = self.clock()
            group = list(self.store.claim_due(
                now=now, owner=self.owner, until=now + self.policy.lease,
                limit=self.policy.per_endpoint, per_endpoint=self.policy.per_endpoint,
                endpoint_id=endpoint_id))
        return total[0], total[1], total[2], total[3]

    def _send_all(self, group: list[Delivery], deadline: float) -> tuple[int, int, int, int]:
        counts = [0, 0, 0, 0]
        for i, delivery in enumerate(group):
            # read before each attempt: an endpoint paused, moved or given a new secret
            # meanwhile is not sent the rest under its old settings
            endpoint = self.store.get_endpoint(delivery.endpoint_id)
            if endpoint is None or not endpoint.active or time.monotonic() > deadline:
                self.store.release([d.id for d in group[i:]], owner=self.owner)
                counts[3] += len(group) - i
                break
            started = time.monotonic()
            outcome = self._attempt(endpoint, delivery)
            with self._slowness_lock:
                self._slowness.pop(endpoint.id, None)  # the newest last
                self._slowness[endpoint.id] = time.monotonic() - started
                while len(self._slowness) > 10_000:
                    del self._slowness[next(iter(self._slowness))]
            counts[[DeliveryStatus.DELIVERED, DeliveryStatus.PENDING,
                    DeliveryStatus.FAILED].index(outcome)] += 1
            if outcome is not DeliveryStatus.DELIVERED and i + 1 < len(group):
                self.store.release([d.id for d in group[i + 1:]], owner=self.owner)
                counts[3] += len(group) - i - 1
                break
        return counts[0], counts[1], counts[2], counts[3]

    def _attempt(self, endpoint: WebhookEndpoint, delivery: Delivery) -> DeliveryStatus:
        body = delivery.body.encode()
        headers = {SIGNATURE_HEADER: sign(endpoint.secret, body, int(self.wall_clock())),
                   "Commerce-Event-Id": delivery.event_id,
                   "Commerce-Event-Type": delivery.event_type,
                   "Commerce-Delivery-Id": delivery.id, **clean_carrier(delivery.trace)}
        status: int | None = None
        error: str | None = None
        try:
            status = self.transport.post(endpoint.url, body, headers)
        except DeliveryFailed as exc:
            error = str(exc)
        except Exception as exc:  # a transport's bug must not stop the others' deliveries
            log.exception("webhook transport failed on %s", delivery.id)
            error = f"{type(exc).__name__}: {exc}"[:500]
        now = self.clock()
        attempts = delivery.attempts + 1
        if status is not None and 200 <= status < 300:
            done = attrs.evolve(delivery, status=DeliveryStatus.DELIVERED, attempts=attempts,
                                last_attempt_at=now, response_status=status, last_error=None,
                                delivered_at=now)
        else:
            if error is None:
                error = f"answered {status}"
            wait = self.policy.next_wait(attempts)
            done = attrs.evolve(
                delivery, attempts=attempts, last_attempt_at=now, response_status=status,
                last_error=error,
                status=DeliveryStatus.FAILED if wait is None else DeliveryStatus.PENDING,
                next_attempt_at=now if wait is None else now + wait)
            if wait is None:
                log.error("webhook %s to %s (%s %s) failed %d times; set aside (replay it "
                          "with `commerce-server webhooks replay %s`): %s", delivery.id,
                          endpoint.id, delivery.event_type, delivery.event_id, attempts,
                          endpoint.id, error)
            else:
                log.warning("webhook %s to %s failed (attempt %d): %s; next in %s",
                            delivery.id, endpoint.id, attempts, error, wait)
        if not self.store.finish(done, owner=self.owner):
            log.warning("webhook %s: its lease passed to another process during the attempt",
                        delivery.id)
        return done.status

    # -- dead letters and the log ---------------------------------------------------------

    def replay(self, endpoint_id: str, delivery_ids: Collection[str] | None = None) -> int:
        """Queue the endpoint's failed deliveries again (all, or those named), due now, with
        their attempts from zero; how many. They go before the later events of their
        aggregate that are still queued; those delivered meanwhile were sent already."""
        ids = None if delivery_ids is None else _check_delivery_ids(delivery_ids)
        self.endpoint(endpoint_id)
        return self.store.replay(endpoint_id, delivery_ids=ids, now=self.clock())

    def purge(self, *, limit: int = 1000) -> int:
        """Delete deliveries delivered longer ago than the policy's retention."""
        return self.store.purge(delivered_before=self.clock() - self.policy.retention,
                                limit=limit)

    def close(self) -> None:
        """Stop the sending threads (`deliver_due` makes them again if called)."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)

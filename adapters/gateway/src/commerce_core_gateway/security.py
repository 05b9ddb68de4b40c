"""Principals from API keys, and rate limits with the `limits` package."""

from __future__ import annotations

import enum
import hashlib
import logging
import math
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Mapping
from typing import TypeVar

import attrs
from limits import RateLimitItem, parse
from limits.aio.storage import Storage as AsyncStorage
from limits.errors import ConfigurationError, StorageError
from limits.storage import MemoryStorage, Storage, storage_from_string
from limits.strategies import MovingWindowRateLimiter
from starlette.requests import Request

from commerce_core import FieldError, InvalidInput
from commerce_core._validate import Errors, check_text

__all__ = ["Authenticator", "KeyRing", "NotAuthenticated", "Principal", "RateLimiter", "Role",
           "parse_api_keys"]

log = logging.getLogger("commerce_core.gateway")

T = TypeVar("T")


class Role(enum.StrEnum):
    ADMIN = "admin"
    CUSTOMER = "customer"


@attrs.frozen
class Principal:
    """Who is calling: an admin, or a customer with their customer id."""

    role: Role
    customer_id: str | None = None

    @classmethod
    def customer(cls, customer_id: str) -> Principal:
        """A customer: their orders are theirs alone."""
        return cls(Role.CUSTOMER, customer_id)

    @classmethod
    def admin(cls) -> Principal:
        return cls(Role.ADMIN)

    def problem(self) -> str | None:
        """What is wrong with a principal a host's `Authenticator` made, if anything."""
        role: object = self.role  # a host without a type checker may pass anything
        if not isinstance(role, Role):
            return f"role {role!r} is not a Role"
        if self.role is Role.ADMIN:
            return None if self.customer_id is None else "an admin has no customer id"
        errors = Errors()
        check_text(errors, "customer_id", self.customer_id, max_length=255)  # the core's rule
        if errors.items:
            return f"a customer needs a customer id: it {errors.items[0].message}"
        return None

    @property
    def id(self) -> str:
        return f"customer:{self.customer_id}" if self.role is Role.CUSTOMER else "admin"

    @property
    def key_scope(self) -> str:
        """Where this principal's idempotency keys live: a customer's are scoped to the
        customer id (shared with the keys of the orders they place); the admins' to the
        empty scope, which no customer id can be (ids are never blank)."""
        return self.customer_id if self.role is Role.CUSTOMER and self.customer_id else ""


class NotAuthenticated(Exception):
    """Raised by a host's `Authenticator` when a request carries credentials that are not
    good (an expired session, a token that does not verify): 401, with ``detail``, counted
    against the client address's failed authentications."""

    def __init__(self, detail: str = "not authenticated") -> None:
        super().__init__(detail)
        self.detail = str(detail) if detail is not None else "not authenticated"


#: The host's say in who is calling: given the request (its headers, cookies, and the
#: ``scope`` a host's middleware filled: a session, a user), a `Principal`, or ``None``
#: when the request names nobody (the API keys are then looked at; public routes answer
#: anyone). A plain function runs on a worker thread (it may read a database); an
#: ``async def`` is awaited on the event loop.
Authenticator = Callable[[Request], "Principal | Awaitable[Principal | None] | None"]


class KeyRing:
    """The API keys, kept and looked up by their SHA-256 digest: the time a lookup takes
    depends on the digest of what was sent, never on how much of a real key a guess got
    right, so keys cannot be found a character at a time (the constant-time comparison,
    done once for all keys)."""

    def __init__(self, keys: Mapping[str, Principal]) -> None:
        self._by_digest = {_digest(key): principal for key, principal in keys.items()}

    def principal(self, key: str) -> Principal | None:
        """Who holds ``key``, or ``None``."""
        return self._by_digest.get(_digest(key))


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()


def parse_api_keys(spec: str) -> dict[str, Principal]:
    """``KEY=admin,KEY=customer:CUSTOMER_ID,...`` (the ``COMMERCE_API_KEYS`` format)."""
    keys: dict[str, Principal] = {}
    for index, entry in enumerate(part.strip() for part in spec.split(",")):
        if not entry:
            continue
        key, sep, who = entry.partition("=")
        role, _, customer = who.partition(":")
        if not sep or not key or (role, bool(customer)) not in (
                ("admin", False), ("customer", True)):
            raise InvalidInput("invalid API keys", [FieldError(
                f"COMMERCE_API_KEYS[{index}]", "must be KEY=admin or KEY=customer:CUSTOMER_ID")])
        keys[key] = Principal(Role(role), customer or None)
    return keys


@attrs.frozen
class Window:
    """The state of one limit after a hit, for the RateLimit-* headers."""

    allowed: bool
    limit: int
    remaining: int
    reset_seconds: int


class _Sweeper:
    """One thread for every `SweptMemoryStorage` of the process: it drops their expired
    entries every ``every`` seconds while any is alive (held weakly: an app dropped, or
    closed, is swept no more) and ends when none is left, so that building apps starts no
    thread per app and leaves none behind."""

    def __init__(self, every: float) -> None:
        self.every = every
        self._storages: weakref.WeakSet[SweptMemoryStorage] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def add(self, storage: SweptMemoryStorage) -> None:
        with self._lock:
            self._storages.add(storage)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="rate-limit-expiry",
                                                daemon=True)
                self._thread.start()

    def discard(self, storage: SweptMemoryStorage) -> None:
        with self._lock:
            self._storages.discard(storage)

    @property
    def running(self) -> bool:
        with self._lock:
            return self._thread is not None

    def _run(self) -> None:
        while True:
            time.sleep(self.every)
            with self._lock:
                live = list(self._storages)
                if not live:
                    self._thread = None
                    return
            for storage in live:
                try:
                    storage.expire()
                except Exception:  # one storage's trouble must not end the sweeping of all
                    log.exception("rate limits: sweeping expired entries failed")
            del live, storage  # held until the next sweep, they would never be let go


class SweptMemoryStorage(MemoryStorage):
    """limits' in-memory storage, swept of its expired entries every second by the one
    `_Sweeper` thread of the process, instead of a new `threading.Timer` whenever the last
    one has run (every 10 ms): under steady traffic that is a thread started per request,
    and it cost a tenth of a place-order request (``make bench``, gateway cost). Expired
    entries are only memory to give back: every check compares times, so limits are as
    exact as before."""

    sweeper = _Sweeper(every=1.0)

    def __init__(self, uri: str | None = None, wrap_exceptions: bool = False,
                 **options: str) -> None:
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)
        self.timer.cancel()  # the base class's own first timer: the sweeper does its work
        self.sweeper.add(self)

    def _MemoryStorage__schedule_expiry(self) -> None:  # what the base class calls per hit
        """Nothing: the sweeper expires entries."""

    def expire(self) -> None:
        self._MemoryStorage__expire_events()  # type: ignore[attr-defined]

    def close(self) -> None:
        self.sweeper.discard(self)


class RateLimiter:
    """A moving-window limiter on a `limits` storage chosen by URL (``memory://``,
    ``redis://host:6379``, ...).

    A storage that fails (down, or silent past ``timeout``) is not asked again for
    ``cooldown`` seconds: meanwhile the limits are not applied, at once, instead of every
    request waiting ``timeout`` for each limit (a breaker; logged once when it opens). Then
    one request asks it again, the others still going through unasked until it answers; an
    answer closes the breaker."""

    def __init__(self, storage_url: str, *, timeout: float = 0.25, cooldown: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.cooldown = cooldown
        self._clock = clock
        self._resume_at = 0.0  # 0: closed; else the storage is not asked before then
        self._breaker = threading.Lock()
        scheme = storage_url.split("://", 1)[0].lower()
        options: dict[str, float] = {}
        if scheme.startswith("redis"):
            # a Redis that takes connections and never answers must not hang the requests
            # that ask it: after ``timeout`` the limit is not applied (logged), as when the
            # storage is down
            options = {"socket_timeout": timeout, "socket_connect_timeout": timeout}
        try:
            self.storage: Storage | AsyncStorage = (
                SweptMemoryStorage(storage_url, wrap_exceptions=True)
                if scheme == "memory"
                else storage_from_string(storage_url, wrap_exceptions=True, **options))
        except (ValueError, ConfigurationError) as exc:
            problem = str(exc)
            if scheme.startswith("redis") and "prerequisite" in problem:
                problem = ("the redis package is not installed: pip install "
                           "'commerce-core-gateway[redis]'")
            raise InvalidInput("invalid rate limit storage", [
                FieldError("rate_limits_url", problem)]) from exc
        self.strategy = MovingWindowRateLimiter(self.storage)

    def open(self) -> None:
        """Sweep the memory storage again after `close` (a lifespan entered again)."""
        if isinstance(self.storage, SweptMemoryStorage):
            self.storage.sweeper.add(self.storage)

    def close(self) -> None:
        """Stop what the storage runs (the memory storage's sweeping), if anything."""
        close = getattr(self.storage, "close", None)
        if callable(close) and isinstance(self.storage, SweptMemoryStorage):
            close()

    @staticmethod
    def parse(limit: str) -> RateLimitItem:
        try:
            return parse(limit)
        except ValueError as exc:
            raise InvalidInput("invalid rate limit", [FieldError("limit", str(exc))]) from exc

    @property
    def skipping(self) -> bool:
        """Whether the storage is being left alone after a failure (the breaker is open)."""
        return self._clock() < self._resume_at

    def ask(self, call: Callable[[], T], default: T) -> T:
        """``call()``'s answer from the storage, or ``default`` when it fails (a
        `StorageError`) or is being left alone after a failure."""
        now = self._clock()
        with self._breaker:
            if now < self._resume_at:
                return default
            if self._resume_at:  # open, cooled down: this call asks, the others do not yet
                self._resume_at = now + self.cooldown
        try:
            answer = call()
        except StorageError as exc:
            with self._breaker:
                opening = not self._resume_at
                self._resume_at = self._clock() + self.cooldown
            if opening:
                log.warning("rate limit storage unavailable, not limiting for %g s: %s",
                            self.cooldown, exc)
            return default
        if self._resume_at:
            with self._breaker:
                self._resume_at = 0.0
            log.warning("rate limit storage answers again: limiting")
        return answer

    def blocked(self, item: RateLimitItem, *identifiers: str) -> int | None:
        """Seconds until ``identifiers`` may be hit again if they are over ``item`` now,
        without counting a hit; ``None`` when they are not (or the storage cannot say)."""

        def ask() -> int | None:
            if self.strategy.test(item, *identifiers):
                return None
            stats = self.strategy.get_window_stats(item, *identifiers)
            return max(0, math.ceil(stats.reset_time - time.time()))

        return self.ask(ask, None)

    def hit(self, item: RateLimitItem, *identifiers: str) -> Window | None:
        """Count one request; ``None`` when the storage cannot be reached (the request is
        let through: a rate limiter that is down must not take the shop down with it)."""

        def ask() -> Window:
            allowed = self.strategy.hit(item, *identifiers)
            stats = self.strategy.get_window_stats(item, *identifiers)
            reset = max(0, math.ceil(stats.reset_time - time.time()))
            return Window(allowed, item.amount, max(0, stats.remaining), reset)

        return self.ask(ask, None)

"""Principals from API keys, and rate limits with the `limits` package."""

from __future__ import annotations

import enum
import hashlib
import logging
import math
import threading
import time
from collections.abc import Mapping

import attrs
from limits import RateLimitItem, parse
from limits.aio.storage import Storage as AsyncStorage
from limits.errors import ConfigurationError, StorageError
from limits.storage import MemoryStorage, Storage, storage_from_string
from limits.strategies import MovingWindowRateLimiter

from commerce_core import FieldError, InvalidInput

__all__ = ["KeyRing", "Principal", "RateLimiter", "Role", "parse_api_keys"]

log = logging.getLogger("commerce_core.gateway")


class Role(enum.StrEnum):
    ADMIN = "admin"
    CUSTOMER = "customer"


@attrs.frozen
class Principal:
    """Who is calling: an admin, or a customer with their customer id."""

    role: Role
    customer_id: str | None = None

    @property
    def id(self) -> str:
        return f"customer:{self.customer_id}" if self.role is Role.CUSTOMER else "admin"

    @property
    def key_scope(self) -> str:
        """Where this principal's idempotency keys live: a customer's are scoped to the
        customer id (shared with the keys of the orders they place); the admins' to the
        empty scope, which no customer id can be (ids are never blank)."""
        return self.customer_id if self.role is Role.CUSTOMER and self.customer_id else ""


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


class SweptMemoryStorage(MemoryStorage):
    """limits' in-memory storage, with one thread that drops expired entries every second for
    the storage's lifetime, instead of a new `threading.Timer` whenever the last one has run
    (every 10 ms): under steady traffic that is a thread started per request, and it cost a
    tenth of a place-order request (``make bench``, gateway cost). Expired entries are only
    memory to give back: every check compares times, so limits are as exact as before."""

    def __init__(self, uri: str | None = None, wrap_exceptions: bool = False,
                 sweep_every: float = 1.0, **options: str) -> None:
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)
        self._stopped = threading.Event()
        self._sweeper = threading.Thread(target=self._sweep, args=(sweep_every,),
                                         name="rate-limit-expiry", daemon=True)
        self._sweeper.start()

    def _MemoryStorage__schedule_expiry(self) -> None:  # what the base class calls per hit
        """Nothing: the sweeper thread expires entries."""

    def _sweep(self, every: float) -> None:
        while not self._stopped.wait(every):
            self._MemoryStorage__expire_events()  # type: ignore[attr-defined]

    def close(self) -> None:
        self._stopped.set()


class RateLimiter:
    """A moving-window limiter on a `limits` storage chosen by URL (``memory://``,
    ``redis://host:6379``, ...)."""

    def __init__(self, storage_url: str, *, timeout: float = 0.25) -> None:
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
            raise InvalidInput("invalid rate limit storage", [
                FieldError("rate_limits_url", str(exc))]) from exc
        self.strategy = MovingWindowRateLimiter(self.storage)

    @staticmethod
    def parse(limit: str) -> RateLimitItem:
        try:
            return parse(limit)
        except ValueError as exc:
            raise InvalidInput("invalid rate limit", [FieldError("limit", str(exc))]) from exc

    def blocked(self, item: RateLimitItem, *identifiers: str) -> int | None:
        """Seconds until ``identifiers`` may be hit again if they are over ``item`` now,
        without counting a hit; ``None`` when they are not (or the storage cannot say)."""
        try:
            if self.strategy.test(item, *identifiers):
                return None
            stats = self.strategy.get_window_stats(item, *identifiers)
        except StorageError as exc:
            log.warning("rate limit storage unavailable, not limiting: %s", exc)
            return None
        return max(0, math.ceil(stats.reset_time - time.time()))

    def hit(self, item: RateLimitItem, *identifiers: str) -> Window | None:
        """Count one request; ``None`` when the storage cannot be reached (the request is
        let through: a rate limiter that is down must not take the shop down with it)."""
        try:
            allowed = self.strategy.hit(item, *identifiers)
            stats = self.strategy.get_window_stats(item, *identifiers)
        except StorageError as exc:
            log.warning("rate limit storage unavailable, not limiting: %s", exc)
            return None
        reset = max(0, math.ceil(stats.reset_time - time.time()))
        return Window(allowed, item.amount, max(0, stats.remaining), reset)

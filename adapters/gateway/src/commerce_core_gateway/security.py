"""Principals from API keys, and rate limits with the `limits` package."""

from __future__ import annotations

import enum
import logging
import math
import time

import attrs
from limits import RateLimitItem, parse
from limits.errors import ConfigurationError, StorageError
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

from commerce_core import FieldError, InvalidInput

__all__ = ["Principal", "RateLimiter", "Role", "parse_api_keys"]

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


class RateLimiter:
    """A moving-window limiter on a `limits` storage chosen by URL (``memory://``,
    ``redis://host:6379``, ...)."""

    def __init__(self, storage_url: str) -> None:
        try:
            self.storage = storage_from_string(storage_url, wrap_exceptions=True)
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

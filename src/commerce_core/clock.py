"""Time and identifiers, injectable so that tests and recovery are deterministic."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from typing import Protocol

__all__ = ["Clock", "first_id_at", "new_id", "system_clock"]


class Clock(Protocol):
    """Anything that tells the current time as an aware UTC datetime."""

    def __call__(self) -> datetime: ...


def system_clock() -> datetime:
    """The wall clock, in UTC."""
    return datetime.now(UTC)


_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lower case


def new_id(prefix: str) -> str:
    """A new opaque identifier that sorts by creation time (48-bit ms clock + 80 random bits)."""
    return _encode(prefix, (time.time_ns() // 1_000_000) << 80
                   | int.from_bytes(os.urandom(10), "big"))


def first_id_at(prefix: str, moment: datetime) -> str:
    """The smallest identifier `new_id` can make at ``moment`` or later: every id of an
    object created from then on sorts at or after it, every older one before it (keyset
    bounds by time, on the primary key)."""
    milliseconds = max(0, int(moment.timestamp() * 1000))
    return _encode(prefix, min(milliseconds, (1 << 48) - 1) << 80)


def _encode(prefix: str, value: int) -> str:
    chars = []
    for _ in range(26):
        value, digit = divmod(value, 32)
        chars.append(_ALPHABET[digit])
    return f"{prefix}_{''.join(reversed(chars))}"

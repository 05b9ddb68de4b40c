"""Time and identifiers, injectable so that tests and recovery are deterministic."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from typing import Protocol

__all__ = ["Clock", "new_id", "system_clock"]


class Clock(Protocol):
    """Anything that tells the current time as an aware UTC datetime."""

    def __call__(self) -> datetime: ...


def system_clock() -> datetime:
    """The wall clock, in UTC."""
    return datetime.now(UTC)


_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lower case


def new_id(prefix: str) -> str:
    """A new opaque identifier that sorts by creation time (48-bit ms clock + 80 random bits)."""
    value = (time.time_ns() // 1_000_000) << 80 | int.from_bytes(os.urandom(10), "big")
    chars = []
    for _ in range(26):
        value, digit = divmod(value, 32)
        chars.append(_ALPHABET[digit])
    return f"{prefix}_{''.join(reversed(chars))}"

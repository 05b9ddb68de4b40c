"""Keyset pagination shared by every list: a page of items and an opaque cursor to the next."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from typing import Generic, TypeVar

import attrs

from commerce_core.errors import FieldError, InvalidInput

__all__ = ["MAX_PAGE_SIZE", "Page", "decode_cursor", "encode_cursor"]

T = TypeVar("T")

MAX_PAGE_SIZE = 100


@attrs.frozen
class Page(Generic[T]):
    """One page of a list; pass ``next_cursor`` back to get the next page (``None``: no more)."""

    items: Sequence[T]
    next_cursor: str | None


def encode_cursor(key: str) -> str:
    return base64.urlsafe_b64encode(key.encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> str | None:
    """The key behind a cursor, or `InvalidInput` for one we did not issue."""
    if cursor is None:
        return None
    try:
        key = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        key = ""
    # the keys we issue are ids and SKUs: printable, never a control character (a NUL
    # would reach the database as a query parameter it cannot store)
    if not key or not key.isprintable():
        raise InvalidInput("invalid cursor", [FieldError("cursor", "not a cursor")])
    return key


def check_limit(limit: int) -> None:
    if type(limit) is not int or not 1 <= limit <= MAX_PAGE_SIZE:
        raise InvalidInput(
            "invalid limit", [FieldError("limit", f"must be an integer from 1 to {MAX_PAGE_SIZE}")]
        )


def page_of(items: Sequence[T], limit: int, key: str | None) -> Page[T]:
    """Build a page from ``limit + 1`` fetched items; ``key`` is the key of the last kept item."""
    if len(items) > limit:
        return Page(items[:limit], encode_cursor(key) if key is not None else None)
    return Page(items, None)

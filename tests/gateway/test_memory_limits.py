"""The in-memory rate limit storage: exact limits, no thread per request, expired entries
given back."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from commerce_core_gateway.security import RateLimiter, SweptMemoryStorage


def test_memory_limits_are_exact_and_start_no_thread_per_hit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    timers: list[threading.Timer] = []
    real_timer = threading.Timer

    def counted(*args: Any, **kwargs: Any) -> threading.Timer:
        timers.append(real_timer(*args, **kwargs))
        return timers[-1]

    monkeypatch.setattr(threading, "Timer", counted)  # what limits' storage starts
    limiter = RateLimiter("memory://")
    assert isinstance(limiter.storage, SweptMemoryStorage)
    five = limiter.parse("5/minute")
    windows = []
    for _ in range(7):
        windows.append(limiter.hit(five, "all", "customer:alice"))
        time.sleep(0.02)  # longer than limits' 10 ms timer: each hit would start a thread
    assert [w.allowed for w in windows if w] == [True] * 5 + [False] * 2
    assert [w.remaining for w in windows if w][:5] == [4, 3, 2, 1, 0]
    assert limiter.hit(five, "all", "customer:bob") is not None  # others are not limited
    assert len(timers) <= 1  # the base class's first one; limits' own storage: one per hit


def test_expired_entries_are_swept_away() -> None:
    storage = SweptMemoryStorage("memory://", sweep_every=0.05)
    try:
        assert storage.acquire_entry("k", 10, 1)
        assert storage.events["k"]
        deadline = time.monotonic() + 5
        while storage.events.get("k") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not storage.events.get("k")  # one second later the entry is gone
        assert storage.acquire_entry("k", 1, 1)  # and the limit starts afresh
    finally:
        storage.close()

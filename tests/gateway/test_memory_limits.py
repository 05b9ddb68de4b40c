"""The in-memory rate limit storage: exact limits, no thread per request, expired entries
given back."""

from __future__ import annotations

import gc
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
    storage = SweptMemoryStorage("memory://")
    try:
        assert storage.acquire_entry("k", 10, 1)
        assert storage.events["k"]
        deadline = time.monotonic() + 5
        while storage.events.get("k") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not storage.events.get("k")  # about a second later the entry is gone
        assert storage.acquire_entry("k", 1, 1)  # and the limit starts afresh
    finally:
        storage.close()


def _sweepers() -> int:
    return sum(1 for t in threading.enumerate() if t.name == "rate-limit-expiry")


def test_many_apps_share_one_sweeper_that_ends_with_them() -> None:
    from commerce_core_gateway import create_app  # noqa: PLC0415
    from tests.gateway.conftest import make_platform  # noqa: PLC0415

    platform = make_platform()
    apps = [create_app(platform) for _ in range(20)]
    assert _sweepers() == 1  # not one per app
    for app in apps:
        app.state.gateway.close()
    gc.collect()  # the storages of other tests' limiters, dropped but in reference cycles
    deadline = time.monotonic() + 5
    while SweptMemoryStorage.sweeper.running and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _sweepers() == 0  # nothing left running once every app is closed
    # an app dropped without closing is not swept for ever either
    dropped = create_app(platform)
    assert _sweepers() == 1
    del dropped, apps
    deadline = time.monotonic() + 5
    while SweptMemoryStorage.sweeper.running and time.monotonic() < deadline:
        gc.collect()
        time.sleep(0.1)
    assert _sweepers() == 0

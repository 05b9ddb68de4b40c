"""OWASP API4: a rate-limit store that takes connections and never answers does not take
the server down: the limit is skipped after a short timeout, and health checks are answered
whatever the request threads are doing."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from limits.errors import StorageError
from limits.util import WindowStats

from commerce_core_gateway.security import RateLimiter
from tests.e2e.conftest import ALICE_KEY, Server, sqlite_env


@pytest.fixture
def silent_redis(silent: list[socket.socket]) -> Iterator[int]:
    """A TCP server on a free port that accepts every connection and never says a word;
    ``silent`` holds the connections it took."""
    listener = socket.create_server(("127.0.0.1", 0))
    held = silent
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            held.append(connection)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield int(listener.getsockname()[1])
    stop.set()
    thread.join(timeout=5)
    listener.close()
    for connection in held:
        connection.close()


@pytest.fixture
def silent() -> list[socket.socket]:
    return []


def test_a_failed_store_is_left_alone_for_a_while_then_asked_again(
    silent_redis: int, silent: list[socket.socket]
) -> None:
    """The breaker: after the store failed once, the requests go through at once for
    ``cooldown`` seconds (no connection, no 0.25 s wait each); then one asks again."""
    now = [100.0]
    limiter = RateLimiter(f"redis://127.0.0.1:{silent_redis}", timeout=0.1, cooldown=5,
                          clock=lambda: now[0])
    limit = limiter.parse("10/minute")
    assert limiter.hit(limit, "alice") is None  # timed out: let through
    assert _skipping(limiter)
    asked = len(silent)
    assert asked >= 1
    for _ in range(20):
        assert limiter.hit(limit, "alice") is None
        assert limiter.blocked(limit, "alice") is None
    assert len(silent) == asked  # not asked while cooling down
    now[0] += 5
    assert not _skipping(limiter)
    assert limiter.hit(limit, "alice") is None  # asked again: silent still
    assert len(silent) > asked
    assert _skipping(limiter)


def _skipping(limiter: RateLimiter) -> bool:
    return limiter.skipping


class _Flaky:
    """A strategy whose storage fails until ``up`` is set; counts what it was asked."""

    def __init__(self) -> None:
        self.up = False
        self.calls = 0

    def hit(self, item: object, *identifiers: str) -> bool:
        self.calls += 1
        if not self.up:
            raise StorageError(ConnectionError("down"))
        return True

    def get_window_stats(self, item: object, *identifiers: str) -> WindowStats:
        return WindowStats(reset_time=time.time() + 60, remaining=9)


def test_one_request_probes_a_cooled_down_store_and_an_answer_closes_the_breaker(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    limiter = RateLimiter("memory://", cooldown=5, clock=lambda: now[0])
    flaky = _Flaky()
    limiter.strategy = flaky  # type: ignore[assignment]
    limit = limiter.parse("10/minute")
    assert limiter.hit(limit, "a") is None
    assert limiter.hit(limit, "a") is None
    assert flaky.calls == 1
    assert caplog.text.count("not limiting for 5 s") == 1  # logged once, when it opened
    now[0] = 5.0
    probe_started = threading.Event()
    release = threading.Event()
    answers: list[object] = []

    def slow_probe() -> None:
        def call() -> str:
            probe_started.set()
            release.wait(5)
            return "answered"
        answers.append(limiter.ask(call, "default"))

    prober = threading.Thread(target=slow_probe)
    prober.start()
    assert probe_started.wait(5)
    flaky.up = True
    assert limiter.hit(limit, "a") is None  # the probe is out: the others do not ask yet
    assert flaky.calls == 1
    release.set()
    prober.join(5)
    assert answers == ["answered"]
    assert not limiter.skipping
    window = limiter.hit(limit, "a")  # closed: limits apply again
    assert window is not None and window.allowed and window.remaining == 9
    assert "answers again" in caplog.text


def test_a_silent_rate_limit_store_does_not_hang_the_server(
    tmp_path: Path, silent_redis: int
) -> None:
    server = Server(tmp_path, {**sqlite_env(tmp_path), "COMMERCE_THREADS": "4",
                               "COMMERCE_RATE_LIMITS_URL": f"redis://127.0.0.1:{silent_redis}"},
                    "--demo")
    try:
        with ThreadPoolExecutor(20) as pool:
            answers = list(pool.map(
                lambda n: httpx.get(f"{server.url}/v1/orders", timeout=15,
                                    headers={"Authorization": f"Bearer {ALICE_KEY}"}
                                    ).status_code, range(40)))
            health = httpx.get(f"{server.url}/healthz", timeout=5)
        assert answers == [200] * 40  # the limit skipped (and logged), the requests served
        assert health.status_code == 200
        assert "not limiting" in server.output()
    finally:
        server.stop()


def test_bad_keys_against_a_silent_store_leave_the_health_checks_their_threads(
    tmp_path: Path, silent_redis: int
) -> None:
    """Each failed authentication is counted in the (silent) store: on threads of its own,
    not on those of the readiness probe, which a load balancer gives a second or two."""
    server = Server(tmp_path, {**sqlite_env(tmp_path), "COMMERCE_THREADS": "4",
                               "COMMERCE_RATE_LIMITS_URL": f"redis://127.0.0.1:{silent_redis}"},
                    "--demo")
    try:
        with ThreadPoolExecutor(24) as pool:
            guesses = [pool.submit(httpx.get, f"{server.url}/v1/orders", timeout=30,
                                   headers={"Authorization": f"Bearer guess-{n}"})
                       for n in range(48)]
            ready = [httpx.get(f"{server.url}/readyz", timeout=1.5).status_code
                     for _ in range(3)]
            assert {g.result().status_code for g in guesses} == {401}
        assert ready == [200, 200, 200]
    finally:
        server.stop()

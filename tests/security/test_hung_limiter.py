"""OWASP API4: a rate-limit store that takes connections and never answers does not take
the server down: the limit is skipped after a short timeout, and health checks are answered
whatever the request threads are doing."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import ALICE_KEY, Server, sqlite_env


@pytest.fixture
def silent_redis() -> Iterator[int]:
    """A TCP server on a free port that accepts every connection and never says a word."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
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

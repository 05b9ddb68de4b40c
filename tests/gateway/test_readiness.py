"""``/readyz`` means it: both stores and a host's required checks (503 without them); the
rate limits' storage when it is not in memory and the reference server's broker, without
which the server is degraded (200, ``degraded``); a generic answer for clients, which
dependency and why in the log."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from commerce_core import Platform
from commerce_core_gateway import GatewayConfig, create_app
from commerce_server.asgi import dependencies
from commerce_server.config import Settings
from tests.conftest import require
from tests.gateway.conftest import Client


def _ready(shop: Platform, **config: object) -> tuple[int, str]:
    answer = Client(create_app(shop, GatewayConfig(**config))).get("/readyz")  # type: ignore[arg-type]
    return answer.status_code, answer.text


def test_a_rate_limit_storage_that_does_not_answer_makes_the_server_degraded(
    shop: Platform, caplog: pytest.LogCaptureFixture,
) -> None:
    """Requests are let through unlimited meanwhile (logged): the server still serves."""
    require("redis")
    assert _ready(shop, rate_limits_url="redis://127.0.0.1:6379") == (200,
                                                                       '{"status": "ready"}')
    with caplog.at_level(logging.WARNING, logger="commerce_core.gateway"):
        status, body = _ready(shop, rate_limits_url="redis://127.0.0.1:1")
    assert (status, body) == (200, '{"status": "degraded"}')  # nothing for clients to map
    assert any("rate limits" in r.getMessage() for r in caplog.records)


def test_a_check_the_host_requires_makes_it_not_ready_and_an_optional_one_degraded(
    shop: Platform, caplog: pytest.LogCaptureFixture,
) -> None:
    def down() -> None:
        raise ConnectionError("search index at 10.0.0.9:9200 refused")

    assert _ready(shop, readiness={"search": lambda: None})[0] == 200
    with caplog.at_level(logging.WARNING, logger="commerce_core.gateway"):
        status, body = _ready(shop, readiness={"search": down})
    assert status == 503 and "a dependency does not answer" in body and "10.0.0.9" not in body
    assert any("search" in r.getMessage() and "10.0.0.9" in r.getMessage()
               for r in caplog.records)
    assert _ready(shop, dependencies={"search": down}) == (200, '{"status": "degraded"}')


def test_the_reference_server_checks_its_broker(tmp_path: Path) -> None:
    require("rabbitmq")
    env = {"COMMERCE_ORDERS_URL": f"sqlite:///{tmp_path}/o.db",
           "COMMERCE_INVENTORY_URL": f"sqlite:///{tmp_path}/i.db"}
    assert dependencies(Settings.from_env(env)) == {}  # memory://: no broker to ask
    up = dependencies(Settings.from_env({**env, "COMMERCE_EVENTS_URL":
                                      "amqp://guest:guest@127.0.0.1:5672/%2F"}))
    up["broker"]()  # answers
    down = dependencies(Settings.from_env({**env, "COMMERCE_EVENTS_URL":
                                        "amqp://guest:guest@127.0.0.1:1/%2F"}))
    with pytest.raises(ConnectionRefusedError):
        down["broker"]()


def test_a_dependency_that_hangs_does_not_hold_the_probe(shop: Platform) -> None:
    def hangs() -> None:
        time.sleep(3)

    def slow() -> None:
        time.sleep(0.3)

    begun = time.monotonic()
    status, body = _ready(shop, dependencies={"search": hangs, "cache": slow, "queue": hangs})
    assert time.monotonic() - begun < 1.5  # the deadline, not the sum of the waits
    assert (status, body) == (200, '{"status": "degraded"}')


def test_a_check_that_hangs_holds_one_thread_and_spoils_no_other(shop: Platform) -> None:
    """Probe after probe, a dependency that never answers is not asked again while its run
    is still going, and the others are still asked and heard each time."""
    release = threading.Event()
    runs = {"search": 0, "cache": 0}

    def hangs() -> None:
        runs["search"] += 1
        release.wait(30)

    def fine() -> None:
        runs["cache"] += 1

    client = Client(create_app(shop, GatewayConfig(dependencies={"search": hangs,
                                                                 "cache": fine})))
    before = set(threading.enumerate())
    try:
        answers = [client.get("/readyz").json()["status"] for _ in range(6)]
        assert answers == ["degraded"] * 6
        assert runs == {"search": 1, "cache": 6}
        hung = [t for t in set(threading.enumerate()) - before
                if t.name == "readiness-search"]
        assert len(hung) == 1  # the one hung run
    finally:
        release.set()
    time.sleep(0.1)
    assert client.get("/readyz").json()["status"] == "ready"  # answered: asked again
    assert runs["search"] == 2


def test_stores_or_a_required_check_that_hang_make_it_not_ready_within_a_second(
    shop: Platform,
) -> None:
    release = threading.Event()

    def hangs() -> None:
        release.wait(30)

    client = Client(create_app(shop, GatewayConfig(readiness={"database": hangs})))
    try:
        begun = time.monotonic()
        answer = client.get("/readyz")
        assert time.monotonic() - begun < 1.5  # the probe's deadline, not the hang
        assert answer.status_code == 503
        assert answer.headers["Retry-After"] == "5"
    finally:
        release.set()


def test_the_gateway_s_telemetry_never_fails_a_request(shop: Platform) -> None:
    """A host's telemetry that raises (a statsd down) turns no 429 into a 500."""

    class Broken:
        @contextlib.contextmanager
        def span(self, name: str, attributes: object) -> Iterator[None]:
            yield

        def record(self, event: str, **labels: object) -> None:
            raise OSError("statsd: network unreachable")

    client = Client(create_app(shop, GatewayConfig(rate_limit="2/minute",
                                                   telemetry=Broken())))
    assert [client.get("/v1/products").status_code for _ in range(4)] == [200, 200, 429, 429]


def test_a_check_that_raises_a_base_exception_is_asked_again_next_time(
    shop: Platform,
) -> None:
    calls = []

    def cancelled_once() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise asyncio.CancelledError  # not an Exception

    client = Client(create_app(shop, GatewayConfig(readiness={"search": cancelled_once})))
    assert client.get("/readyz").status_code == 503
    time.sleep(0.05)
    begun = time.monotonic()
    assert client.get("/readyz").status_code == 200  # a new run, not the dead one's wait
    assert time.monotonic() - begun < 0.5 and len(calls) == 2


def test_many_probes_at_once_all_answer_within_the_deadline(shop: Platform) -> None:
    """Probes that find a run overdue (begun by an earlier probe) do not wait for it again:
    16 at once on 4 probe threads, none takes much more than the 0.5 s deadline."""
    release = threading.Event()

    def hangs() -> None:
        release.wait(30)

    app = create_app(shop, GatewayConfig(dependencies={"search": hangs}, probe_threads=4))

    async def probe(http: httpx.AsyncClient) -> tuple[int, float]:
        begun = time.monotonic()
        answer = await http.get("/readyz")
        return answer.status_code, time.monotonic() - begun

    async def run() -> list[tuple[int, float]]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://shop") as http:
            return list(await asyncio.gather(*(probe(http) for _ in range(16))))

    try:
        answers = asyncio.run(run())
    finally:
        release.set()
    assert {status for status, _ in answers} == {200}
    assert max(seconds for _, seconds in answers) < 1.2, answers

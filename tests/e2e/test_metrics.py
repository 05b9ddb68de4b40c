"""``GET /metrics`` of the reference server: after a scripted burst over 2 workers, the exact
counts, summed over both; and who may read it."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import (
    ADMIN_KEY,
    ALICE_KEY,
    Server,
    app_from_env,
    client_of,
    metered_server,
    sqlite_env,
)
from tests.e2e.test_server import ADDRESS, auth

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def _samples(text: str) -> Samples:
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def _value(samples: Samples, name: str, **labels: str) -> float:
    return sum(value for (found, have), value in samples.items()
               if found == name and set(labels.items()) <= have)


def _order(url: str, sku: str, quantity: int, token: str, key: str) -> int:
    """One order on a new connection (the kernel spreads connections over the workers)."""
    return httpx.post(f"{url}/v1/orders", timeout=30,
                      headers=auth(ALICE_KEY, **{"Idempotency-Key": key}),
                      json={"lines": [{"sku": sku, "quantity": quantity}],
                            "payment": {"token": token}, "shipping_address": ADDRESS}
                      ).status_code


def test_metrics_after_a_burst_over_two_workers_are_exact(tmp_path: Path) -> None:
    server, folder = metered_server(tmp_path)
    try:
        burst = ([("MUG-01", 1, "tok_visa")] * 6 + [("CUP-01", 5, "tok_visa")] * 2
                 + [("MUG-01", 1, "tok_declined")] * 2 + [("TEA-01", 1, "tok_timeout")])
        statuses = Counter(_order(server.url, sku, n, token, f"burst-{i}")
                           for i, (sku, n, token) in enumerate(burst))
        assert statuses == Counter({201: 6, 409: 2, 402: 2, 503: 1}), statuses
        text = httpx.get(f"{server.url}/metrics", timeout=10).text
    finally:
        server.stop()
    samples = _samples(text)
    checkouts = "commerce_checkouts_total"
    assert _value(samples, checkouts, outcome="confirmed") == 6
    assert _value(samples, checkouts, outcome="insufficient-stock") == 2
    assert _value(samples, checkouts, outcome="payment-declined") == 2
    assert _value(samples, checkouts, outcome="payment-unavailable") == 1
    assert _value(samples, "commerce_stockouts_total") == 2
    calls = "commerce_provider_calls_total"
    assert _value(samples, calls, operation="authorize", outcome="ok") == 6
    assert _value(samples, calls, operation="authorize", outcome="declined") == 2
    assert _value(samples, calls, operation="authorize", outcome="unavailable") >= 1
    assert _value(samples, "commerce_http_requests_total", route="/v1/orders", method="POST",
                  status="201") == 6
    assert _value(samples, "commerce_checkout_duration_seconds_count") == 11
    assert _value(samples, "commerce_saga_step_duration_seconds_count", step="started") >= 9
    # no label carries an id
    labels = {value for (_, have) in samples for _, value in have}
    assert not any(value.startswith(("ord_", "pay_")) for value in labels)
    # the values came from both workers, and were summed
    writers = {path.name.rsplit("_", 1)[-1] for path in folder.glob("counter_*.db")}
    assert len(writers) >= 2, writers


def test_metrics_are_for_near_clients_and_admin_keys(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    app = app_from_env(tmp_path, monkeypatch, COMMERCE_METRICS_ALLOW="10.0.0.0/8")

    async def status(client: tuple[str, int], key: str | None = None) -> tuple[int, str]:
        async with client_of(app, client) as http:
            answer = await http.get("/metrics", headers=auth(key) if key else {})
            return answer.status_code, answer.text

    async def run() -> None:
        near, text = await status(("10.1.2.3", 5000))
        assert near == 200 and "commerce_checkouts_total" in text
        assert (await status(("192.0.2.7", 5000)))[0] == 404
        assert (await status(("192.0.2.7", 5000), ALICE_KEY))[0] == 404
        assert (await status(("192.0.2.7", 5000), ADMIN_KEY))[0] == 200
        # an IPv4 client of a dual-stack socket (--host ::) is the IPv4 address it is
        assert (await status(("::ffff:10.1.2.3", 5000)))[0] == 200
        assert (await status(("::ffff:192.0.2.7", 5000)))[0] == 404

    asyncio.run(run())


def test_rate_limit_refusals_are_counted_by_limit(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    app = app_from_env(tmp_path, monkeypatch, COMMERCE_CHECKOUT_RATE_LIMIT="1/minute")

    async def run() -> str:
        async with client_of(app) as http:
            for n in range(2):  # no catalogue: the first is refused for its SKU, not limited
                await http.post("/v1/orders", headers=auth(ALICE_KEY, **{
                    "Idempotency-Key": f"r{n}"}), json={
                    "lines": [{"sku": "MUG-01", "quantity": 1}],
                    "payment": {"token": "tok_visa"}, "shipping_address": ADDRESS})
            for _ in range(3):
                await http.get("/v1/orders/nope", headers=auth("wrong-key-wrong-key-wrong"))
            return (await http.get("/metrics")).text

    samples = _samples(asyncio.run(run()))
    assert _value(samples, "commerce_rate_limited_total", limit="checkout") == 1
    assert _value(samples, "commerce_http_requests_total", route="/v1/orders", method="POST",
                  status="429") == 1
    assert _value(samples, "commerce_http_requests_total", route="/v1/orders/{id}",
                  method="GET", status="401") == 3


def test_keys_tried_on_metrics_count_as_failed_authentications(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = app_from_env(tmp_path, monkeypatch, COMMERCE_METRICS_ALLOW="10.0.0.0/8",
                       COMMERCE_AUTH_FAILURE_LIMIT="3/minute")

    async def run() -> list[int]:
        async with client_of(app, ("192.0.2.9", 5000)) as http:
            guesses = [(await http.get("/metrics", headers=auth(f"guess-{n}"))).status_code
                       for n in range(3)]
            right = (await http.get("/metrics", headers=auth(ADMIN_KEY))).status_code
            api = (await http.get("/v1/orders", headers=auth(ADMIN_KEY))).status_code
            return [*guesses, right, api]

    # the right key is not looked at once the address is past its failures, here or on
    # the API: guessing on /metrics is guessing on the API
    assert asyncio.run(run()) == [404, 404, 404, 404, 429]


def test_paths_inside_the_console_s_mount_are_labelled_by_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = app_from_env(tmp_path, monkeypatch)

    async def run() -> str:
        async with client_of(app) as http:
            for path in ("/admin/orders/ord_1", "/admin/zzz/123", "/admin/static/admin.css",
                         "/admin/static/nothing-9.css", "/nowhere/7"):
                await http.get(path)
            return (await http.get("/metrics")).text

    samples = _samples(asyncio.run(run()))
    routes = {dict(labels)["route"] for (name, labels) in samples
              if name == "commerce_http_requests_total"}
    assert routes == {"/admin/orders/{id}", "/admin/*", "/admin/static/*", "unmatched"}


def test_a_worker_that_dies_takes_its_live_gauges_with_it(tmp_path: Path) -> None:
    server, folder = metered_server(tmp_path)
    try:
        for n in range(20):  # both workers use their pools (and write their live gauges)
            _order(server.url, "TEA-01", 1, "tok_visa", f"w-{n}")
        live = {path.name.rsplit("_", 1)[-1].removesuffix(".db")
                for path in folder.glob("gauge_livesum_*.db")}
        assert len(live) >= 2, live
        victim = int(sorted(live)[0])
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (folder / f"gauge_livesum_{victim}.db").exists():
            time.sleep(0.2)
        assert not (folder / f"gauge_livesum_{victim}.db").exists()
        text = httpx.get(f"{server.url}/metrics", timeout=10).text
    finally:
        server.stop()
    assert _value(_samples(text), "commerce_db_pool_connections_in_use") == 0


def test_an_operators_metrics_folder_is_emptied_when_the_server_starts(tmp_path: Path) -> None:
    """Counters start at 0 with the server even in a folder the operator chose and an
    earlier run wrote to; files that are not the metrics' own are left alone, and a second
    server on the folder is refused, as is a folder holding a store's SQLite file."""
    folder = tmp_path / "chosen"
    folder.mkdir()
    (tmp_path / "second").mkdir()
    (folder / "notes.txt").write_text("mine")
    env = {**sqlite_env(tmp_path), "PROMETHEUS_MULTIPROC_DIR": str(folder)}
    with pytest.raises(RuntimeError, match=r"holds other \.db files"):
        Server(tmp_path / "second", {**env, "COMMERCE_ORDERS_URL":
                                     f"sqlite:///{folder}/orders.db"}, "--demo")
    (folder / "orders.db").unlink()
    (folder / "inventory.db").write_bytes(b"")  # a stray store of another run: refused too
    with pytest.raises(RuntimeError, match=r"holds other \.db files \(inventory\.db\)"):
        Server(tmp_path / "second", env, "--demo")
    (folder / "inventory.db").unlink()
    counts = []
    for run in range(2):
        server = Server(tmp_path, env, "--demo")
        try:
            text = httpx.get(f"{server.url}/metrics", timeout=10).text
            for _ in range(3):
                httpx.get(f"{server.url}/v1/products", timeout=10)
            if run == 0:
                with pytest.raises(RuntimeError, match="in use by another server"):
                    Server(tmp_path / "second", env, "--demo")
        finally:
            server.stop()
        counts.append(_value(_samples(text), "commerce_http_requests_total",
                             route="/v1/products"))
        assert list(folder.glob("*.db")), "the run wrote no metrics there"
    assert counts == [0, 0]  # the second run did not count the first one's requests
    assert (folder / "notes.txt").read_text() == "mine"

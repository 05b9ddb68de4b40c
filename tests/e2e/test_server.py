"""The reference server over real HTTP, as an outside client written from the contract."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from commerce_core import Platform
from tests.conftest import order as order_command
from tests.conftest import seed
from tests.e2e.conftest import ADMIN_KEY, ALICE_KEY, BOB_KEY, SERVER, Server, sqlite_env

ADDRESS = {"name": "Alice", "line1": "Main St 1", "city": "Berlin", "postal_code": "10115",
           "country": "DE"}


def auth(key: str, **headers: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", **headers}


def order(sku: str, quantity: int, token: str = "tok_visa") -> dict[str, Any]:
    return {"lines": [{"sku": sku, "quantity": quantity}], "payment": {"token": token},
            "shipping_address": ADDRESS}


def test_a_customer_buys_and_the_admin_ships(server: Server) -> None:
    with httpx.Client(base_url=server.url, timeout=10) as http:
        products = http.get("/v1/products").json()["items"]
        mug = next(p for p in products if p["sku"] == "MUG-01")
        placed = http.post("/v1/orders", json=order("MUG-01", 2),
                           headers=auth(ALICE_KEY, **{"Idempotency-Key": "buy-1"}))
        assert placed.status_code == 201, placed.text
        body = placed.json()
        assert body["status"] == "confirmed"
        assert body["total"]["amount"] == 2 * mug["price"]["amount"]
        assert http.get("/v1/products/MUG-01").json()["available"] == mug["available"] - 2
        replay = http.post("/v1/orders", json=order("MUG-01", 2),
                           headers=auth(ALICE_KEY, **{"Idempotency-Key": "buy-1"}))
        assert replay.json() == body and replay.headers["Idempotent-Replayed"] == "true"
        seen = http.get(f"/v1/orders/{body['id']}", headers=auth(ALICE_KEY)).json()
        assert seen == body
        assert http.get(f"/v1/orders/{body['id']}", headers=auth(BOB_KEY)).status_code == 404
        shipped = http.post(f"/v1/orders/{body['id']}/ship", headers=auth(ADMIN_KEY),
                            json={"carrier": "DHL", "tracking_number": "JD1"})
        assert shipped.status_code == 200 and shipped.json()["status"] == "shipped"
        assert http.get("/v1/inventory/MUG-01", headers=auth(ADMIN_KEY)).json()[
            "on_hand"] == 60 - 2


def test_every_error_status_of_the_contract_over_http(server: Server) -> None:
    with httpx.Client(base_url=server.url, timeout=10) as http:
        def status(method: str, path: str, **kwargs: Any) -> tuple[int, str]:
            response = http.request(method, path, **kwargs)
            kind = (response.json().get("type", "") if response.headers.get(
                "content-type") == "application/problem+json" else "")
            return response.status_code, kind

        key = {"Idempotency-Key": "e1"}
        assert status("POST", "/v1/orders", json=order("MUG-01", 1), headers=auth(
            ALICE_KEY)) == (400, "/problems/idempotency-key-required")
        assert status("GET", "/v1/orders") == (401, "/problems/unauthenticated")
        assert status("POST", "/v1/orders", json=order("TEA-01", 1, "tok_declined"),
                      headers=auth(ALICE_KEY, **key)) == (402, "/problems/payment-declined")
        assert status("GET", "/v1/inventory/MUG-01", headers=auth(BOB_KEY)) == (
            403, "/problems/forbidden")
        assert status("GET", "/v1/products/NOPE-1") == (404, "/problems/not-found")
        assert status("POST", "/v1/orders", json=order("CUP-01", 50),
                      headers=auth(BOB_KEY, **key)) == (409, "/problems/insufficient-stock")
        assert status("PUT", "/v1/products/X", content=b"{" + b" " * 70000 + b"}",
                      headers=auth(ADMIN_KEY, **{"Content-Type": "application/json"})) == (
            413, "/problems/body-too-large")
        assert status("PUT", "/v1/products/X", content=b"name=x", headers=auth(
            ADMIN_KEY, **{"Content-Type": "application/x-www-form-urlencoded"})) == (
            415, "/problems/unsupported-media-type")
        assert status("POST", "/v1/orders", json={**order("MUG-01", 1), "x": 1},
                      headers=auth(ALICE_KEY, **{"Idempotency-Key": "e3"})) == (
            422, "/problems/invalid-input")
        timeout = http.post("/v1/orders", json=order("TEA-01", 1, "tok_timeout"),
                            headers=auth(ALICE_KEY, **{"Idempotency-Key": "e4"}))
        assert timeout.status_code == 503 and timeout.headers["Retry-After"]


def test_demo_mode_prints_working_keys_when_none_are_set(tmp_path: Path) -> None:
    env = sqlite_env(tmp_path)
    env["COMMERCE_API_KEYS"] = ""
    demo = Server(tmp_path, env, "--demo")
    try:
        output = demo.output()
        admin = re.search(r"admin\s+Authorization: Bearer (\S+)", output)
        alice = re.search(r"customer alice\s+Authorization: Bearer (\S+)", output)
        assert admin and alice, output
        assert demo.url in output
        console = re.search(r"admin console: (\S+)", output)
        assert console and console.group(1) == f"{demo.url}/admin/", output
        sign_in = httpx.get(console.group(1), follow_redirects=True, timeout=10)
        assert sign_in.status_code == 200 and "Admin API key" in sign_in.text
        inventory = httpx.get(f"{demo.url}/v1/inventory/MUG-01",
                              headers=auth(admin.group(1)), timeout=10)
        assert inventory.status_code == 200
        assert httpx.get(f"{demo.url}/v1/orders", headers=auth(alice.group(1)),
                         timeout=10).status_code == 200
    finally:
        demo.stop()


def test_rate_limits_hold_over_http(tmp_path: Path) -> None:
    env = {**sqlite_env(tmp_path), "COMMERCE_RATE_LIMIT": "3/minute"}
    limited = Server(tmp_path, env, "--demo")
    try:
        codes = [httpx.get(f"{limited.url}/v1/products", headers=auth(BOB_KEY), timeout=10)
                 for _ in range(4)]
        assert [r.status_code for r in codes] == [200, 200, 200, 429]
        assert codes[3].headers["Retry-After"] and codes[3].headers["RateLimit-Remaining"] == "0"
    finally:
        limited.stop()


def test_migrate_and_recover_commands(tmp_path: Path) -> None:
    env = {**os.environ, **sqlite_env(tmp_path)}
    migrate = subprocess.run([SERVER, "migrate"], cwd=tmp_path, env=env, capture_output=True,
                             text=True, check=False, timeout=60)
    assert migrate.returncode == 0, migrate.stderr
    assert (tmp_path / "orders.db").exists() and (tmp_path / "inventory.db").exists()
    recover = subprocess.run([SERVER, "recover"], cwd=tmp_path, env=env, capture_output=True,
                             text=True, check=False, timeout=60)
    assert recover.returncode == 0 and "RecoveryReport" in recover.stdout
    bad = subprocess.run([SERVER, "migrate"], cwd=tmp_path, capture_output=True, text=True,
                         env={**env, "COMMERCE_API_KEYS": "nonsense"}, check=False, timeout=60)
    assert bad.returncode == 2 and "COMMERCE_API_KEYS" in bad.stderr


def test_import_products_loads_a_catalogue_file_and_refuses_a_bad_one_whole(
    tmp_path: Path,
) -> None:
    env = {**os.environ, **sqlite_env(tmp_path)}
    good = tmp_path / "catalogue.csv"
    good.write_text("sku,name,price,currency,active\n"
                    + "".join(f"SKU-{n:04d},Item {n},{n}.50,EUR,{'no' if n == 7 else 'yes'}\n"
                              for n in range(1, 2501))
                    + "YEN-1,Tea bowl,1200,JPY,\n", encoding="utf-8")
    done = subprocess.run([SERVER, "import-products", str(good), "--batch-size", "1000"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, check=False,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert "2501 created, 0 updated, 0 unchanged" in done.stdout
    assert "2501/2501" in done.stderr  # the progress bar, finished
    from commerce_core import Money, Platform  # noqa: PLC0415 - after the server wrote it

    with Platform.from_urls(orders=env["COMMERCE_ORDERS_URL"],
                            inventory=env["COMMERCE_INVENTORY_URL"],
                            payments="sandbox://") as platform:
        assert platform.inventory.get_product("SKU-0012").price == Money(1250, "EUR")
        assert platform.inventory.get_product("SKU-0007").active is False
        assert platform.inventory.get_product("YEN-1").price == Money(1200, "JPY")
    bad = tmp_path / "bad.csv"
    bad.write_text("sku,name,price,currency\nNEW-1,Fine,1.00,EUR\nNEW-2,Cheap,1.005,EUR\n"
                   "bad sku,Spaces,1.00,EUR\nNEW-3,Odd,1.00,euro\n", encoding="utf-8")
    refused = subprocess.run([SERVER, "import-products", str(bad)], cwd=tmp_path, env=env,
                             capture_output=True, text=True, check=False, timeout=60)
    assert refused.returncode == 2
    assert "line 3.price" in refused.stderr and "line 5.currency" in refused.stderr
    rows = subprocess.run([SERVER, "import-products", str(tmp_path / "missing.csv")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, check=False,
                          timeout=60)
    assert rows.returncode == 2 and "missing.csv" in rows.stderr
    with Platform.from_urls(orders=env["COMMERCE_ORDERS_URL"],
                            inventory=env["COMMERCE_INVENTORY_URL"],
                            payments="sandbox://") as platform:
        listed = platform.inventory.list_products(active_only=False, limit=100,
                                                  cursor=None).items
        assert not any(p.sku.startswith("NEW-") for p in listed)


def test_the_admin_routes_over_http(server: Server) -> None:
    admin = auth(ADMIN_KEY)
    with httpx.Client(base_url=server.url, timeout=10) as http:
        assert http.get("/readyz").json() == {"status": "ready"}
        assert http.get("/openapi.json").json()["openapi"].startswith("3.1")
        assert http.put("/v1/warehouses/HAM", headers=admin,
                        json={"name": "Hamburg"}).status_code == 201
        assert http.put("/v1/products/LID-01", headers=admin, json={
            "name": "Teapot lid", "price": {"amount": 450, "currency": "EUR"}}).status_code == 201
        level = http.post("/v1/inventory/LID-01/adjustments",
                          headers=auth(ADMIN_KEY, **{"Idempotency-Key": "receipt-1"}),
                          json={"warehouse": "HAM", "delta": 3, "reason": "receipt"})
        assert level.status_code == 201 and level.json()["on_hand"] == 3
        placed = http.post("/v1/orders", json=order("LID-01", 2),
                           headers=auth(BOB_KEY, **{"Idempotency-Key": "lid"})).json()
        path = f"/v1/orders/{placed['id']}"
        assert http.post(f"{path}/ship", headers=admin,
                         json={"carrier": "UPS", "tracking_number": "1Z"}).status_code == 200
        assert http.post(f"{path}/deliver", headers=admin).json()["status"] == "delivered"
        refunded = http.post(f"{path}/refund", json={"reason": "returned"},
                             headers=auth(ADMIN_KEY, **{"Idempotency-Key": "refund-1"}))
        assert refunded.json()["status"] == "refunded"
        other = http.post("/v1/orders", json=order("LID-01", 1),
                          headers=auth(BOB_KEY, **{"Idempotency-Key": "lid-2"})).json()
        cancelled = http.post(f"/v1/orders/{other['id']}/cancel", headers=auth(BOB_KEY))
        assert cancelled.json()["status"] == "cancelled"
        mine = http.get("/v1/orders", headers=auth(BOB_KEY),
                        params={"status": "cancelled"}).json()["items"]
        assert [o["id"] for o in mine] == [other["id"]]
        stock = http.get("/v1/inventory/LID-01", headers=admin).json()
        assert (stock["on_hand"], stock["reserved"], stock["available"]) == (1, 0, 1)


def test_orders_placed_before_a_restart_can_be_shipped_after_it(tmp_path: Path) -> None:
    env = sqlite_env(tmp_path)
    del env["COMMERCE_PAYMENTS_URL"]  # the demo's own provider, kept in var/sandbox.db
    first = Server(tmp_path, env, "--demo")
    try:
        placed = httpx.post(f"{first.url}/v1/orders", json=order("TEA-01", 1), timeout=10,
                            headers=auth(ALICE_KEY, **{"Idempotency-Key": "before"})).json()
    finally:
        first.stop()
    second = Server(tmp_path, env, "--demo")
    try:
        shipped = httpx.post(f"{second.url}/v1/orders/{placed['id']}/ship", timeout=10,
                             headers=auth(ADMIN_KEY),
                             json={"carrier": "DHL", "tracking_number": "after"})
        assert shipped.status_code == 200, shipped.text
        assert shipped.json()["payment"]["captured"]["amount"] == 800
        again = httpx.get(f"{second.url}/v1/products/TEA-01", timeout=10).json()
        assert again["available"] == 199  # the restart seeded no extra stock
    finally:
        second.stop()
    assert (tmp_path / "var" / "sandbox.db").exists()


def test_two_workers_share_stores_and_provider(tmp_path: Path) -> None:
    env = sqlite_env(tmp_path)
    del env["COMMERCE_PAYMENTS_URL"]  # --demo: one sandbox file for both workers
    workers = Server(tmp_path, env, "--demo", "--workers", "2")
    try:
        with httpx.Client(base_url=workers.url, timeout=10) as http:
            ids = []
            for i in range(12):
                # a new connection each time, so the kernel spreads them over the workers
                placed = httpx.post(f"{workers.url}/v1/orders", json=order("TEA-01", 1),
                                    headers=auth(ALICE_KEY, **{"Idempotency-Key": f"w{i}"}),
                                    timeout=10)
                assert placed.status_code == 201, placed.text
                ids.append(placed.json()["id"])
            for order_id in ids:
                shipped = httpx.post(f"{workers.url}/v1/orders/{order_id}/ship", timeout=10,
                                     headers=auth(ADMIN_KEY),
                                     json={"carrier": "DHL", "tracking_number": order_id})
                assert shipped.status_code == 200, shipped.text
            stock = http.get("/v1/inventory/TEA-01", headers=auth(ADMIN_KEY)).json()
            assert (stock["on_hand"], stock["reserved"]) == (200 - 12, 0)
        assert workers.output().count("Started server process") == 2
    finally:
        workers.stop()


class _Crash(BaseException):
    """The process dies mid-checkout (nothing may catch it)."""


def test_start_up_recovery_leaves_checkouts_another_host_may_be_running(
    tmp_path: Path,
) -> None:
    """A start in a rolling restart, or beside another host: a checkout last touched a
    moment ago may be that host's, running; the start-up sweep keeps its grace and leaves
    it. With no grace (a lone server after a crash, on purpose) it finishes it."""
    env = {**sqlite_env(tmp_path), "COMMERCE_PAYMENTS_URL": f"sandbox:///{tmp_path}/sandbox.db"}

    def open_shop(**options: Any) -> Platform:
        return Platform.from_urls(orders=env["COMMERCE_ORDERS_URL"],
                                  inventory=env["COMMERCE_INVENTORY_URL"],
                                  payments=env["COMMERCE_PAYMENTS_URL"], **options)

    def crash(step: str, _: object) -> None:
        if step == "stock_reserved":
            raise _Crash

    shop = open_shop(on_step=crash)
    seed(shop)
    with pytest.raises(_Crash):
        shop.checkout.place_order(order_command(("MUG", 1)), idempotency_key="k1")
    (running,) = shop.orders.list().items
    shop.close()

    def status_after_start(extra: dict[str, str]) -> tuple[str, str]:
        Server(tmp_path, {**env, **extra}).stop()
        with open_shop() as platform:
            found = platform.orders.get(running.id)
        return found.status.value, found.saga_step.value

    assert status_after_start({}) == ("pending", "started")
    assert status_after_start({"COMMERCE_RECOVERY_GRACE": "0"}) == ("confirmed", "done")


def test_the_server_sends_outbound_webhooks_and_replays_from_the_command_line(
    tmp_path: Path,
) -> None:
    """An admin puts an endpoint over HTTP; the server's workers queue and send the events
    of an order placed over HTTP, signed; `commerce-server webhooks` lists and replays."""
    from tests.webhook_receiver import receiver  # noqa: PLC0415 - this test's alone

    secret = "whsec_e2e_0123456789abcdef"
    env = sqlite_env(tmp_path)
    running = Server(tmp_path, env, "--demo")
    try:
        with receiver(secret) as erp, httpx.Client(base_url=running.url, timeout=10) as http:
            put = http.put("/v1/webhook-endpoints/erp", headers=auth(ADMIN_KEY), json={
                "url": erp.url, "secret": secret, "events": ["order.confirmed",
                                                            "order.shipped"]})
            assert put.status_code == 201, put.text
            placed = http.post("/v1/orders", json=order("MUG-01", 1),
                               headers=auth(ALICE_KEY, **{"Idempotency-Key": "hook-1"}))
            assert placed.status_code == 201, placed.text
            http.post(f"/v1/orders/{placed.json()['id']}/ship", headers=auth(ADMIN_KEY),
                      json={"carrier": "DHL", "tracking_number": "W1"})
            got = erp.wait_for(2, timeout=30)
            assert [(b["type"], b["data"]["order_id"]) for b in got] == [
                ("order.confirmed", placed.json()["id"]), ("order.shipped", placed.json()["id"])]
            assert erp.bad_signatures == 0
            log = http.get("/v1/webhook-endpoints/erp/deliveries", headers=auth(ADMIN_KEY))
            assert [d["status"] for d in log.json()["items"]] == ["delivered", "delivered"]
    finally:
        running.stop()
    full = {**os.environ, **env}
    listed = subprocess.run([SERVER, "webhooks", "list"], cwd=tmp_path, env=full,
                            capture_output=True, text=True, check=False, timeout=60)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.startswith("erp  active  http://127.0.0.1:")
    assert secret not in listed.stdout
    replayed = subprocess.run([SERVER, "webhooks", "replay", "erp"], cwd=tmp_path, env=full,
                              capture_output=True, text=True, check=False, timeout=60)
    assert (replayed.returncode, replayed.stdout.strip()) == (
        0, "0 failed deliveries of erp queued again")
    for wrong in (["webhooks", "replay", "nope"], ["webhooks"], ["webhooks", "replay"],
                  ["webhooks", "purge", "erp"], ["recover", "extra"],
                  ["webhooks", "replay", "erp", "--delivery", "whd_\udcff"]):
        refused = subprocess.run([SERVER, *wrong], cwd=tmp_path, env=full, capture_output=True,
                                 text=True, check=False, timeout=60)
        assert refused.returncode == 2, (wrong, refused.stderr)
        assert "commerce-server" in refused.stderr and "Traceback" not in refused.stderr

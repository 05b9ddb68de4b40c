"""The reference server scaled out: several workers share one rate limit through Redis, and
four workers on PostgreSQL sell a few hot SKUs to concurrent buyers without overselling,
relaying every confirmed order to RabbitMQ."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
import uuid
from collections import Counter
from datetime import timedelta
from pathlib import Path

import httpx

from commerce_core import OrderStatus, Platform
from commerce_core.events import DomainEvent, deduplicated
from commerce_core.testing import SandboxPaymentGateway, check_invariants
from commerce_core_rabbitmq import RabbitMQConsumer
from tests.conftest import require, server_urls
from tests.e2e.conftest import Server, sqlite_env
from tests.e2e.test_server import ADDRESS, auth

BROKER = "amqp://guest:guest@127.0.0.1:5672/%2F"
ROOT = Path(__file__).resolve().parents[2]


def _statuses(url: str, key: str, count: int) -> Counter[int]:
    """``count`` requests, each on a new connection, so the kernel spreads them over the
    workers."""
    return Counter(httpx.get(f"{url}/v1/products", headers=auth(key), timeout=10).status_code
                   for _ in range(count))


def test_two_workers_share_one_rate_limit_through_redis(tmp_path: Path) -> None:
    require("redis")
    key, who = f"k-{uuid.uuid4().hex}", uuid.uuid4().hex  # counters of their own in Redis
    env = {**sqlite_env(tmp_path), "COMMERCE_API_KEYS": f"{key}=customer:{who}",
           "COMMERCE_RATE_LIMIT": "20/minute"}
    local = Server(tmp_path, env, "--workers", "2")
    try:
        per_worker = _statuses(local.url, key, 60)
    finally:
        local.stop()
    # each worker counting for itself lets more through: proof both workers answered
    assert per_worker[200] > 20

    shared = Server(tmp_path, {**env, "COMMERCE_RATE_LIMITS_URL": "redis://127.0.0.1:6379"},
                    "--workers", "2")
    try:
        assert _statuses(shared.url, key, 60) == Counter({200: 20, 429: 40})
    finally:
        shared.stop()


BUYERS = 16
ORDERS_PER_BUYER = 25
HOT = ["MUG-01", "POT-01", "CUP-01"]  # 60, 5 and 2 units in the demo catalogue


def test_four_workers_on_postgresql_sell_hot_skus_without_oversell(tmp_path: Path) -> None:
    for needed in ("postgresql", "redis", "rabbitmq"):
        require(needed)
    orders_url, inventory_url = server_urls("postgresql", tmp_path)
    payments_url = f"sandbox:///{tmp_path}/sandbox.db"  # one provider for every worker
    keys = ",".join([f"admin-{tmp_path.name}=admin"]
                    + [f"buyer-{n}-{tmp_path.name}=customer:buyer-{n}" for n in range(BUYERS)])
    tag = uuid.uuid4().hex[:8]
    exchange = f"test.events.{tag}"  # a new one: its events no queue wants are parked
    consumer = RabbitMQConsumer(BROKER, queue=f"test.confirmed.{tag}", exchange=exchange,
                                bindings=["order.confirmed"])
    env = {"COMMERCE_ORDERS_URL": orders_url, "COMMERCE_INVENTORY_URL": inventory_url,
           "COMMERCE_PAYMENTS_URL": payments_url, "COMMERCE_API_KEYS": keys,
           "COMMERCE_RATE_LIMITS_URL": "redis://127.0.0.1:6379",
           "COMMERCE_RATE_LIMIT": "100000/second", "COMMERCE_CHECKOUT_RATE_LIMIT": "100000/second",
           "COMMERCE_EVENTS_URL": f"{BROKER}?exchange={exchange}"}
    server = Server(tmp_path, env, "--workers", "4", "--demo")
    outcomes: Counter[int] = Counter()
    confirmed_ids: set[str] = set()
    lock = threading.Lock()

    def buyer(n: int) -> None:
        rng = random.Random(n)
        no_keep_alive = httpx.Limits(max_keepalive_connections=0)  # new connection each time
        with httpx.Client(base_url=server.url, timeout=30, limits=no_keep_alive) as http:
            for i in range(ORDERS_PER_BUYER):
                lines = [{"sku": sku, "quantity": rng.randint(1, 2)}
                         for sku in rng.sample(HOT, rng.choice((1, 2)))]
                token = "tok_declined" if i % 8 == 7 else "tok_visa"
                response = http.post(
                    "/v1/orders", headers=auth(f"buyer-{n}-{tmp_path.name}",
                                               **{"Idempotency-Key": f"o-{i}"}),
                    json={"lines": lines, "payment": {"token": token},
                          "shipping_address": ADDRESS})
                with lock:
                    outcomes[response.status_code] += 1
                    if response.status_code == 201:
                        confirmed_ids.add(response.json()["id"])

    try:
        threads = [threading.Thread(target=buyer, args=(n,)) for n in range(BUYERS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        events: list[DomainEvent] = []
        consumer.consume(deduplicated(events.append), idle_timeout=3.0)
    finally:
        server.stop()
        consumer.delete_queue()
        consumer.close()

    assert sum(outcomes.values()) == BUYERS * ORDERS_PER_BUYER
    assert set(outcomes) <= {201, 402, 409}, outcomes  # no 5xx, no 429
    assert outcomes[409] > 0, "the hot SKUs never ran out"
    assert outcomes[201] == len(confirmed_ids) > 0
    # every confirmation left through the outbox, once after deduplication
    assert {e.aggregate_id for e in events} == confirmed_ids
    assert len(events) == len(confirmed_ids)

    gateway = SandboxPaymentGateway(tmp_path / "sandbox.db")
    with Platform.from_urls(orders=orders_url, inventory=inventory_url,
                            payments=payments_url) as platform:
        assert platform.checkout.recover(grace=timedelta(0)).unfinished == ()
        confirmed = list(platform.orders.scan(status=OrderStatus.CONFIRMED))
        assert {o.id for o in confirmed} == confirmed_ids
        for sku in HOT:
            stock = platform.inventory.stock(sku)
            sold = sum(line.quantity for o in confirmed for line in o.lines if line.sku == sku)
            assert stock.reserved == sold <= stock.on_hand
        check_invariants(platform.order_store, platform.inventory_store, gateway)


def test_the_hammer_script_finds_a_sound_server_sound(tmp_path: Path) -> None:
    """examples/hammer.py, the check this page's tests make, as a tool for any deployment."""
    keys = "hadm=admin,h1=customer:h1,h2=customer:h2"
    server = Server(tmp_path, {**sqlite_env(tmp_path), "COMMERCE_API_KEYS": keys,
                               "COMMERCE_PAYMENTS_URL": ""}, "--demo", "--workers", "2")
    try:
        done = subprocess.run(
            [sys.executable, str(ROOT / "examples" / "hammer.py"), "--url", server.url,
             "--buyers", "6", "--orders", "60", "--skus", "POT-01,CUP-01"],
            env={**os.environ, "COMMERCE_API_KEYS": keys}, capture_output=True, text=True,
            timeout=300, check=False)
    finally:
        server.stop()
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads(done.stdout.splitlines()[-1])
    assert summary["oversold_units"] == 0 and summary["errors"] == 0
    assert summary["units_held"] == {"POT-01": 5, "CUP-01": 2}  # sold out, exactly
    assert summary["statuses"]["201"] > 0 and summary["statuses"]["409"] > 0

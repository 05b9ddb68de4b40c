"""The outbox relayed to a real RabbitMQ: the relay is killed mid-stream (SIGKILL), another
takes over, and every event arrives, in order per aggregate once deduplicated by id."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

import pika
import pytest

from commerce_core import CommerceError, Platform
from commerce_core.events import DomainEvent, EventPublishFailed, OutboxRelay, deduplicated
from commerce_core_rabbitmq import RabbitMQConsumer, RabbitMQPublisher, unrouted
from tests.conftest import order, require, seed

BROKER = "amqp://guest:guest@127.0.0.1:5672/%2F"
ROOT = Path(__file__).resolve().parents[2]


def _relay(orders_url: str, exchange: str, owner: str, *extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.integration.relay_process", "--orders", orders_url,
         "--broker", BROKER, "--exchange", exchange, "--owner", owner, "--lease", "1",
         "--batch", "10", *extra], cwd=ROOT)


def _pending(platform: Platform) -> int:
    with platform.order_store.unit_of_work() as uow:
        return len(uow.outbox.pending(limit=100_000))


def _checkouts(platform: Platform, count: int) -> None:
    """Orders that confirm, fail (declined card, no stock), ship and get cancelled."""
    for i in range(count):
        token = "tok_declined" if i % 9 == 4 else "tok_visa"
        try:
            placed = platform.checkout.place_order(
                order(("MUG", 1 + i % 2), ("TEA", 1), token=token, customer=f"c{i % 7}"),
                idempotency_key=f"k{i}")
        except CommerceError:
            continue
        if i % 5 == 1:
            platform.checkout.cancel(placed.id)
        elif i % 5 == 2:
            platform.checkout.ship(placed.id, carrier="DHL", tracking_number=f"T{i}")


def test_a_relay_killed_mid_stream_loses_no_event(tmp_path: Path) -> None:
    require("rabbitmq")
    orders_url = f"sqlite:///{tmp_path}/orders.db"
    platform = Platform.from_urls(orders=orders_url, inventory=f"sqlite:///{tmp_path}/inv.db",
                                  payments="sandbox://")
    seed(platform, {"MUG": 120, "POT": 5, "TEA": 500})
    _checkouts(platform, 120)
    with platform.order_store.unit_of_work() as uow:
        written = list(uow.outbox.pending(limit=100_000))
    assert len(written) > 300
    assert {e.type for e in written} >= {"order.placed", "order.confirmed", "order.failed",
                                         "order.cancelled", "order.shipped", "payment.captured"}

    tag = uuid.uuid4().hex[:8]
    exchange = f"test.events.{tag}"
    consumer = RabbitMQConsumer(BROKER, queue=f"test.all.{tag}", exchange=exchange)
    try:
        first = _relay(orders_url, exchange, "first", "--pause", "0.05")
        deadline = time.monotonic() + 60
        while _pending(platform) > len(written) * 2 // 3:
            assert first.poll() is None, "the relay stopped by itself"
            assert time.monotonic() < deadline, "the relay published nothing"
            time.sleep(0.02)
        first.kill()  # SIGKILL: no clean-up, the lease stays taken until it lapses
        first.wait()
        left = _pending(platform)
        assert 0 < left < len(written), "the relay was not killed mid-stream"

        second = _relay(orders_url, exchange, "second", "--until-empty")
        assert second.wait(timeout=120) == 0
        assert _pending(platform) == 0

        received: list[DomainEvent] = []
        consumer.consume(received.append, idle_timeout=2.0)
        unique: list[DomainEvent] = []
        consumer_view = deduplicated(unique.append)
        for event in received:
            consumer_view(event)
    finally:
        consumer.delete_queue()
        consumer.close()
        platform.close()

    # nothing lost, nothing invented, every event whole
    assert sorted(e.id for e in unique) == sorted(e.id for e in written)
    assert {e.id: e for e in unique} == {e.id: e for e in written}
    # the first copy of each event arrives in the order it was written, so per aggregate too
    assert [e.id for e in unique] == [e.id for e in written]
    sequences: dict[str, list[int]] = defaultdict(list)
    for event in unique:
        sequences[event.aggregate_id].append(event.sequence)
    assert all(s == sorted(set(s)) for s in sequences.values())
    # at least once, not exactly once: whatever was resent is a duplicate the consumer skipped
    assert len(received) - len(unique) >= 0


def test_the_publisher_reports_a_broker_it_cannot_reach() -> None:
    publisher = RabbitMQPublisher("amqp://guest:guest@127.0.0.1:1/%2F")  # nothing listens
    event = DomainEvent.new("order.placed", aggregate_type="order", aggregate_id="o",
                            sequence=0, at=datetime.now(UTC), payload={})
    with pytest.raises(EventPublishFailed, match="RabbitMQ did not take the events"):
        publisher.publish([event])


def _events(count: int) -> list[DomainEvent]:
    now = datetime.now(UTC)
    return [DomainEvent.new("order.placed", aggregate_type="order", aggregate_id=f"o{n}",
                            sequence=n, at=now, payload={"n": n}) for n in range(count)]


def _relaying(folder: Path, exchange: str,
              count: int) -> tuple[Platform, RabbitMQPublisher, OutboxRelay]:
    """A platform with ``count`` events in its order store's outbox, and a relay of them
    to the exchange."""
    platform = Platform.from_urls(orders=f"sqlite:///{folder}/orders.db",
                                  inventory=f"sqlite:///{folder}/inv.db", payments="sandbox://")
    with platform.order_store.unit_of_work() as uow:
        uow.outbox.add(_events(count))
        uow.commit()
    publisher = RabbitMQPublisher(BROKER, exchange=exchange)
    return platform, publisher, OutboxRelay(platform.order_store, publisher, name="orders")


def _drop(exchange: str, *queues: str) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(BROKER))
    channel = connection.channel()
    for queue in (*queues, unrouted(exchange)):
        channel.queue_delete(queue)
    for name in (exchange, unrouted(exchange)):
        channel.exchange_delete(name)
    connection.close()


def test_an_event_no_queue_is_bound_for_is_parked_and_can_be_replayed(tmp_path: Path) -> None:
    """Published with confirms, and nobody listening yet: RabbitMQ would acknowledge and
    drop it, and the relay mark it published. It is parked instead, and replayed once a
    consumer is there."""
    require("rabbitmq")
    exchange = f"test.events.{uuid.uuid4().hex[:8]}"
    platform, publisher, relay = _relaying(tmp_path, exchange, 5)
    try:
        assert relay.drain() == 5  # taken by the broker: parked, not dropped
        consumer = RabbitMQConsumer(BROKER, queue=f"{exchange}.late", exchange=exchange,
                                    bindings=["order.*"])
        assert publisher.replay_unrouted() == 5
        received: list[DomainEvent] = []
        consumer.consume(received.append, idle_timeout=1.0)
        assert sorted(e.payload["n"] for e in received) == [0, 1, 2, 3, 4]
        assert publisher.replay_unrouted() == 0
        consumer.close()
    finally:
        publisher.close()
        platform.close()
        _drop(exchange, f"{exchange}.late")


def test_without_an_alternate_exchange_an_unroutable_event_stays_pending(
    tmp_path: Path,
) -> None:
    """An exchange made before parking existed (RabbitMQ cannot add the alternate exchange
    to it): every publish is mandatory, so the broker's "no route" keeps the event in the
    outbox instead of losing it."""
    require("rabbitmq")
    exchange = f"test.events.{uuid.uuid4().hex[:8]}"
    connection = pika.BlockingConnection(pika.URLParameters(BROKER))
    connection.channel().exchange_declare(exchange, exchange_type="topic", durable=True)
    connection.close()
    platform, publisher, relay = _relaying(tmp_path, exchange, 3)
    try:
        with pytest.raises(EventPublishFailed, match="route"):
            relay.run_once()
        assert _pending(platform) == 3
        consumer = RabbitMQConsumer(BROKER, queue=f"{exchange}.now", exchange=exchange,
                                    bindings=["#"])
        assert relay.drain() == 3  # routable now: delivered, then marked
        received: list[DomainEvent] = []
        consumer.consume(received.append, idle_timeout=1.0)
        assert len(received) == 3
        consumer.close()
    finally:
        publisher.close()
        platform.close()
        _drop(exchange, f"{exchange}.now")

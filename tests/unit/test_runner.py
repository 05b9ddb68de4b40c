"""The background runner a host starts and stops: recovery sweeps, reservation expiry and
the outbox relays on threads of its own, safe beside other runners."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any

import pytest

from commerce_core import OrderStatus, Platform, RetryPolicy
from commerce_core.events import DomainEvent, InProcessPublisher
from commerce_core.orders import SagaStep
from commerce_core.runner import BackgroundRunner
from commerce_core.testing import (
    InMemoryInventoryStore,
    InMemoryOrderStore,
    SandboxPaymentGateway,
)
from tests.conftest import order, seed
from tests.helpers import until
from tests.unit.test_recovery import SimulatedCrash


def _platform(crash_at: str | None = None, stores: Any = None) -> Platform:
    def hook(step: str, _: object) -> None:
        if step == crash_at:
            raise SimulatedCrash(step)

    order_store, inventory_store = stores or (InMemoryOrderStore(), InMemoryInventoryStore())
    return Platform.from_adapters(order_store=order_store, inventory_store=inventory_store,
                                  payment_gateway=SandboxPaymentGateway(),
                                  retry=RetryPolicy.immediate(), on_step=hook)


def _threads(prefix: str) -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith(prefix)]


def test_a_checkout_cut_short_is_finished_by_the_runner() -> None:
    crashing = _platform(crash_at="payment_authorized")
    seed(crashing, {"MUG": 5})
    with pytest.raises(SimulatedCrash):
        crashing.checkout.place_order(order(("MUG", 1)), idempotency_key="k")
    restarted = _platform(stores=(crashing.order_store, crashing.inventory_store))
    (stuck,) = restarted.orders.list().items
    assert not stuck.finished
    with BackgroundRunner(restarted, recovery_interval=timedelta(milliseconds=50),
                          recovery_grace=timedelta(0), name="t1") as runner:
        assert _threads("t1-") == ["t1-recovery"]  # no publishers, no subscriptions: no relays
        assert until(lambda: restarted.orders.get(stuck.id).finished)
    found = restarted.orders.get(stuck.id)
    assert (found.status, found.saga_step) == (OrderStatus.CONFIRMED, SagaStep.DONE)
    assert runner.last_report is not None and not runner.running
    assert _threads("t1-") == []


def test_subscribers_get_each_event_after_its_commit_in_order() -> None:
    platform = _platform()
    seed(platform, {"MUG": 5})
    got: list[DomainEvent] = []
    runner = BackgroundRunner(platform, recovery_interval=timedelta(seconds=30), name="t2")
    runner.subscribe("order.*", got.append)
    runner.start()
    try:
        placed = platform.checkout.place_order(order(("MUG", 1)), idempotency_key="k")
        platform.checkout.ship(placed.id, carrier="DHL", tracking_number="T1")
        assert until(lambda: len([e for e in got if e.type == "order.shipped"]) == 1)
        ours = [e.type for e in got if e.aggregate_id == placed.id]
        assert ours[:2] == ["order.placed", "order.confirmed"] and ours[-1] == "order.shipped"
        assert sorted(_threads("t2-")) == ["t2-recovery", "t2-relay-inventory",
                                           "t2-relay-orders"]
    finally:
        runner.stop()
    assert _threads("t2-") == []
    # started again, the subscriptions are still there
    runner.start()
    try:
        platform.checkout.deliver(placed.id)
        assert until(lambda: got[-1].type == "order.delivered")
    finally:
        runner.stop()
    with pytest.raises(RuntimeError), runner:  # subscriptions come before the start
        runner.subscribe("*", got.append)


def test_a_handler_that_fails_gets_the_batch_again() -> None:
    platform = _platform()
    seed(platform, {"MUG": 5})
    seen: list[str] = []
    failures = {"left": 1}

    def flaky(event: DomainEvent) -> None:
        if event.type == "order.confirmed" and failures["left"]:
            failures["left"] -= 1
            raise RuntimeError("the mail server is down")
        seen.append(event.type)

    runner = BackgroundRunner(platform, name="t3")
    runner.subscribe("order.*", flaky)
    with runner:
        platform.checkout.place_order(order(("MUG", 1)), idempotency_key="k")
        assert until(lambda: "order.confirmed" in seen)
    # at least once: the batch came again, order.placed with it
    assert seen.count("order.confirmed") == 1 and seen.count("order.placed") == 2


def test_a_broker_and_subscribers_both_get_events_and_the_broker_is_closed() -> None:
    platform = _platform()
    seed(platform, {"MUG": 5})
    brokers: list[InProcessPublisher] = []
    on_broker: list[str] = []

    def publisher() -> InProcessPublisher:
        broker = InProcessPublisher()
        broker.subscribe("*", lambda event: on_broker.append(event.type))
        brokers.append(broker)
        return broker

    mine: list[str] = []
    runner = BackgroundRunner(platform, publishers=publisher, name="t4")
    runner.subscribe("stock.*", lambda event: mine.append(event.type))
    with runner:
        platform.inventory.adjust_stock("MUG", "BER", delta=1, reason="count")
        assert until(lambda: "stock.adjusted" in mine and "stock.adjusted" in on_broker)
    assert len(brokers) == 2  # one publisher per store's relay
    broker_handlers = [b._handlers for b in brokers]
    assert broker_handlers == [[], []]  # closed when the runner stopped


def test_two_runners_on_one_store_deliver_each_event_once() -> None:
    platform = _platform()
    seed(platform, {"MUG": 50})
    other = _platform(stores=(platform.order_store, platform.inventory_store))
    got: list[str] = []
    lock = threading.Lock()

    def collect(event: DomainEvent) -> None:
        with lock:
            got.append(event.id)

    runners = [BackgroundRunner(p, name=f"t5{n}") for n, p in enumerate((platform, other))]
    for runner in runners:
        runner.subscribe("order.*", collect)
        runner.start()
    try:
        for n in range(10):
            platform.checkout.place_order(order(("MUG", 1), customer=f"c{n}"),
                                          idempotency_key=f"k{n}")
        assert until(lambda: len(got) >= 20)  # placed + confirmed, ten times
        time.sleep(0.5)  # and nothing more comes
    finally:
        for runner in runners:
            runner.stop()
    assert len(got) == len(set(got)) == 20


def test_a_failing_sweep_is_logged_and_the_next_one_runs(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    platform = _platform()
    calls = {"n": 0}
    real = platform.checkout.recover

    def recover(**kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("the database is down")
        return real(**kwargs)

    monkeypatch.setattr(platform.checkout, "recover", recover)
    with BackgroundRunner(platform, recovery_interval=timedelta(milliseconds=20),
                          name="t6") as runner:
        assert until(lambda: runner.last_report is not None)
    assert runner.failed_sweeps == 1
    assert any("recovery sweep failed" in r.getMessage() for r in caplog.records)


def test_bad_settings_and_a_second_start_are_refused() -> None:
    platform = _platform()
    with pytest.raises(ValueError, match="recovery_interval"):
        BackgroundRunner(platform, recovery_interval=timedelta(0))
    runner = BackgroundRunner(platform, name="t7")
    with runner, pytest.raises(RuntimeError, match="running already"):
        runner.start()
    assert not runner.running


def test_a_poison_event_is_set_aside_and_the_others_go_on() -> None:
    platform = _platform()
    seed(platform, {"MUG": 5})
    on_broker: list[str] = []
    others: list[str] = []

    def publisher() -> InProcessPublisher:
        broker = InProcessPublisher()
        broker.subscribe("*", lambda event: on_broker.append(event.id))
        return broker

    def poison(event: DomainEvent) -> None:
        if event.type == "order.placed":
            raise RuntimeError("cannot render this mail")

    runner = BackgroundRunner(platform, publishers=publisher, name="t8")
    runner.subscribe("order.*", poison)
    runner.subscribe("order.*", lambda event: others.append(event.type))
    with runner:
        placed = platform.checkout.place_order(order(("MUG", 1)), idempotency_key="k")
        platform.checkout.ship(placed.id, carrier="DHL", tracking_number="T1")
        assert until(lambda: "order.shipped" in others, seconds=20)
    (dead,) = runner.dead_letters
    assert dead[1].type == "order.placed" and "cannot render" in dead[2]
    assert len(on_broker) == len(set(on_broker))  # the broker got each event once


def test_a_runner_whose_thread_did_not_stop_cannot_start_again() -> None:
    platform = _platform()
    seed(platform, {"MUG": 5})
    release = threading.Event()
    runner = BackgroundRunner(platform, name="t9")
    def blocked(_: DomainEvent) -> None:
        release.wait(10)

    runner.subscribe("order.*", blocked)
    runner.start()
    platform.checkout.place_order(order(("MUG", 1)), idempotency_key="k")
    time.sleep(0.5)  # the relay is in the handler now
    runner.stop(timeout=0.2)
    assert runner.running  # its relay is still in the handler
    with pytest.raises(RuntimeError, match="has not stopped yet"):
        runner.start()
    release.set()
    assert until(lambda: not runner.running)
    runner.start()
    runner.stop()


def test_a_handler_broken_for_good_does_not_hold_the_outbox_five_tries_an_event() -> None:
    platform = _platform()
    seed(platform, {"MUG": 50})
    others: set[str] = set()

    def broken(event: DomainEvent) -> None:
        raise RuntimeError("the mail server is gone")

    runner = BackgroundRunner(platform, name="t10", max_attempts=2, broken_after=2)
    runner.subscribe("order.placed", broken)
    runner.subscribe("order.confirmed", lambda event: others.add(event.id))
    with runner:
        for n in range(6):
            platform.checkout.place_order(order(("MUG", 1), customer=f"c{n}"),
                                          idempotency_key=f"k{n}")
        # the first two poison events take their 2 tries each (a second apart); then the
        # handler counts as broken, and the other four are set aside at once
        assert until(lambda: len(others) == 6, seconds=30)  # (some more than once)
    assert [dead[1].type for dead in runner.dead_letters] == ["order.placed"] * 6
    assert len({dead[1].id for dead in runner.dead_letters}) == 6  # each set aside once


def test_a_blip_after_a_poison_event_still_gets_its_tries() -> None:
    platform = _platform()
    seed(platform, {"MUG": 50})
    tries: dict[str, int] = {}
    delivered: list[str] = []

    def handler(event: DomainEvent) -> None:
        customer = str(event.payload["customer_id"])
        tries[customer] = tries.get(customer, 0) + 1
        if customer == "poison" or (customer == "blip" and tries[customer] == 1):
            raise RuntimeError("a bug for one customer, then a blip")
        delivered.append(customer)

    runner = BackgroundRunner(platform, name="t11", max_attempts=2)
    runner.subscribe("order.placed", handler)
    with runner:
        for customer in ("poison", "blip"):
            platform.checkout.place_order(order(("MUG", 1), customer=customer),
                                          idempotency_key=customer)
        assert until(lambda: "blip" in delivered, seconds=30)
    assert tries == {"poison": 2, "blip": 2}
    assert [dead[1].payload["customer_id"] for dead in runner.dead_letters] == ["poison"]

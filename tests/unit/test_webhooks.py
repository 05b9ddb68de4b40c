"""Outbound webhooks on every backend, against a real HTTP receiver that checks each
signature: events arrive signed, once, in order per aggregate; an endpoint that is down or
slow is retried with backoff and holds up neither the outbox nor another endpoint; the last
attempt makes a dead letter, which a replay sends again."""

from __future__ import annotations

import ast
import contextlib
import re
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from commerce_core import InvalidInput, Money, NotFound, Platform
from commerce_core.errors import InvalidSignature, StoreError
from commerce_core.events import DomainEvent, InProcessPublisher
from commerce_core.runner import BackgroundRunner
from commerce_core.testing import ManualClock
from commerce_core.webhooks import (
    EVENT_TYPES,
    DeliveryFailed,
    DeliveryReport,
    DeliveryStatus,
    HttpTransport,
    WebhookPolicy,
    WebhookService,
    sign,
    verify,
)
from tests.conftest import order, seed
from tests.webhook_receiver import Receiver, receiver

SECRET = "whsec_test_0123456789abcdef"
FAST = WebhookPolicy(first_wait=timedelta(seconds=10), max_wait=timedelta(minutes=10),
                     jitter=timedelta(0), max_attempts=4)


@pytest.fixture
def hooks(platform: Platform) -> Iterator[WebhookService]:
    assert platform.webhooks is not None  # every store of this repository keeps them
    service = WebhookService(platform.webhooks.store, clock=platform.clock, policy=FAST,
                             transport=HttpTransport(timeout=2))
    yield service
    service.close()


@pytest.fixture
def erp() -> Iterator[Receiver]:
    with receiver(SECRET) as running:
        yield running


def relay(platform: Platform, service: WebhookService) -> list[DomainEvent]:
    """Run both outboxes once into the service's queue; the events, in outbox order."""
    seen: list[DomainEvent] = []
    publisher = InProcessPublisher()

    def queue(event: DomainEvent) -> None:
        seen.append(event)
        service.enqueue(event)

    publisher.subscribe("*", queue)
    for one in platform.outbox_relays(lambda: publisher, owner="tests"):  # one lease holder
        while one.run_once():
            pass
    return seen


def drain(service: WebhookService, passes: int = 20) -> DeliveryReport:
    total = DeliveryReport()
    for _ in range(passes):
        report = service.deliver_due()
        if report == DeliveryReport():
            break
        total = DeliveryReport(*(a + b for a, b in zip(
            (total.delivered, total.retrying, total.dead, total.postponed),
            (report.delivered, report.retrying, report.dead, report.postponed), strict=True)))
    return total


def by_aggregate(bodies: list[dict[str, object]]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for body in bodies:
        data = body["data"]
        assert isinstance(data, dict)
        key = str(data.get("order_id") or data.get("sku"))
        found.setdefault(key, []).append(str(body["id"]))
    return found


# -- signatures, policy, endpoints ----------------------------------------------------------


def test_a_signature_verifies_only_for_its_secret_body_and_time() -> None:
    body = b'{"id":"evt_1"}'
    header = sign(SECRET, body, 1_800_000_000)
    assert re.fullmatch(r"t=1800000000,v1=[0-9a-f]{64}", header)
    verify(SECRET, body, header, now=1_800_000_100)
    # while a secret is rotated, a header may carry one v1 per secret
    other = sign("whsec_other_0123456789", body, 1_800_000_000).split(",")[1]
    verify(SECRET, body, f"{header},{other}", now=1_800_000_000)
    verify("whsec_other_0123456789", body, f"{header},{other}", now=1_800_000_000)
    for secret, sent, given, now in [
        ("whsec_wrong_0123456789", body, header, 1_800_000_000),
        (SECRET, b'{"id":"evt_2"}', header, 1_800_000_000),
        (SECRET, body, header, 1_800_000_301),  # replayed too late
        (SECRET, body, header, 1_799_999_699),  # from the future
        (SECRET, body, None, 1_800_000_000),
        (SECRET, body, "v1=" + header.split("v1=")[1], 1_800_000_000),
        (SECRET, body, "t=1800000000,t=1800000000," + header.split(",")[1], 1_800_000_000),
        (SECRET, body, "t=१८००,v1=00", 1_800_000_000),  # not ASCII digits
        (SECRET, body, "garbage", 1_800_000_000),
        (SECRET, body, header.replace("v1=", "v1=é"), 1_800_000_000),
        (SECRET, body, "t=" + "9" * 400 + ",v1=00", 1_800_000_000),  # no float overflow
    ]:
        with pytest.raises(InvalidSignature):
            verify(secret, sent, given, now=now)


def test_the_waits_grow_exponentially_then_the_delivery_fails_for_good() -> None:
    policy = WebhookPolicy(first_wait=timedelta(seconds=10), max_wait=timedelta(seconds=60),
                           jitter=timedelta(0), max_attempts=5)
    assert [policy.next_wait(n) for n in range(1, 6)] == [
        timedelta(seconds=10), timedelta(seconds=20), timedelta(seconds=40),
        timedelta(seconds=60), None]
    default = WebhookPolicy()
    waits = [default.next_wait(n) for n in range(1, default.max_attempts)]
    assert default.next_wait(default.max_attempts) is None
    assert all(w is not None for w in waits)
    total = sum((w for w in waits if w is not None), timedelta())
    assert timedelta(hours=1) < total < timedelta(hours=2)
    jittered = WebhookPolicy(jitter=timedelta(seconds=1)).next_wait(1)
    assert jittered is not None and timedelta(seconds=10) <= jittered <= timedelta(seconds=11)


@pytest.mark.parametrize("url", [
    "ftp://erp.example/hooks", "https://user:pw@erp.example/hooks", "https://", "erp.example",
    "https://erp.example/ho oks", "https://erp.example/#frag", "https://erp.example:99999/",
    "https://érp.example/", "https://erp.example/\x00", "https://[::1/", "http://x/" + "a" * 2100,
    "HTTP://erp.example/hooks", "Https://erp.example/", "http://erp.example:0/hooks",
])
def test_a_bad_endpoint_is_refused_whole_and_nothing_is_written(
    platform: Platform, url: str
) -> None:
    assert platform.webhooks is not None
    with pytest.raises(InvalidInput) as refused:
        platform.webhooks.put_endpoint("erp", url=url, secret=SECRET, events=["order.*"])
    assert [e.path for e in refused.value.errors] == ["url"]
    hostile: Any = ["order.confirmd", 7, "*"]
    with pytest.raises(InvalidInput) as everything:
        platform.webhooks.put_endpoint("bad id!", url=url, secret="short", events=hostile,
                                       active="yes")  # type: ignore[arg-type]
    assert [e.path for e in everything.value.errors] == [
        "id", "url", "secret", "events[0]", "events[1]", "active"]
    assert platform.webhooks.endpoints() == []


def test_an_endpoint_is_created_then_replaced(platform: Platform, clock: ManualClock) -> None:
    assert platform.webhooks is not None
    created, new = platform.webhooks.put_endpoint(
        "erp", url="https://erp.example/hooks", secret=SECRET,
        events=["order.confirmed", "order.*", "order.confirmed"])
    assert new and created.events == ("order.confirmed", "order.*")
    clock.advance(timedelta(minutes=1))
    replaced, new = platform.webhooks.put_endpoint(
        "erp", url="https://erp.example/v2", secret=SECRET + "x", events=["*"], active=False)
    assert not new
    assert (replaced.url, replaced.events, replaced.active) == (
        "https://erp.example/v2", ("*",), False)
    assert replaced.created_at == created.created_at < replaced.updated_at
    assert "secret" not in repr(replaced) or SECRET not in repr(replaced)
    with pytest.raises(NotFound):
        platform.webhooks.endpoint("crm")
    with pytest.raises(NotFound):
        platform.webhooks.deliveries("crm")


def test_every_event_type_the_platform_writes_can_be_asked_for() -> None:
    """The types written in the core's source (literals, and order.<status> of shipping)
    are all in EVENT_TYPES, so an endpoint may name each."""
    written: set[str] = set()
    for path in Path("src/commerce_core").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and re.fullmatch(
                    r"(order|payment|return|stock)\.[a-z_]+", node.value):
                written.add(node.value)
    written.discard("payment.token")  # a field's path, not an event
    written |= {"order.shipped", "order.partially_shipped"}  # f"order.{status.value}"
    assert written <= set(EVENT_TYPES)
    assert len(written) >= 15


# -- delivery against the receiver ----------------------------------------------------------


def test_events_arrive_signed_once_and_in_order_per_aggregate(
    platform: Platform, hooks: WebhookService, erp: Receiver
) -> None:
    hooks.put_endpoint("erp", url=erp.url, secret=SECRET, events=["order.*", "stock.adjusted"])
    hooks.put_endpoint("returns", url=erp.url + "/returns", secret=SECRET, events=["return.*"])
    seed(platform)
    first = platform.checkout.place_order(order(("MUG", 2)), idempotency_key="k1")
    second = platform.checkout.place_order(order(("POT", 1)), idempotency_key="k2")
    platform.checkout.ship(first.id, carrier="DHL", tracking_number="P1")
    platform.checkout.cancel(second.id)
    events = relay(platform, hooks)
    wanted = [e for e in events if e.type.startswith("order.") or e.type == "stock.adjusted"]
    assert len(wanted) >= 8
    report = drain(hooks)
    assert report.delivered == len(wanted) and report.retrying == report.dead == 0
    got = erp.wait_for(len(wanted))
    assert erp.bad_signatures == 0
    assert sorted(erp.ids()) == sorted(e.id for e in wanted)  # each once, nothing else
    assert {path for path, _ in erp.requests} == {"/hooks"}
    assert by_aggregate(got) == by_aggregate([
        {"id": e.id, "data": dict(e.payload)} for e in wanted])
    sample = next(b for b in got if b["type"] == "order.confirmed")
    assert set(sample) == {"id", "type", "occurred_at", "data"}
    assert isinstance(sample["data"], dict) and sample["data"]["order_id"] in (
        first.id, second.id)
    # the relay handing the same events over again queues nothing twice
    assert hooks.enqueue_all(events) == 0
    assert drain(hooks) == DeliveryReport()
    log = hooks.deliveries("erp", limit=100).items
    assert [d.event_id for d in log] == [e.id for e in reversed(wanted)]
    assert {(d.status, d.attempts, d.response_status) for d in log} == {
        (DeliveryStatus.DELIVERED, 1, 204)}
    assert hooks.deliveries("returns").items == []


def test_a_down_endpoint_is_retried_with_backoff_without_holding_anything_else(
    platform: Platform, hooks: WebhookService, erp: Receiver, clock: ManualClock
) -> None:
    with receiver(SECRET) as crm:
        port = crm.port
        crm.stop()  # down: its port refuses connections
        hooks.put_endpoint("crm", url=crm.url, secret=SECRET, events=["order.*"])
        hooks.put_endpoint("erp", url=erp.url, secret=SECRET, events=["order.*"])
        seed(platform)
        placed = platform.checkout.place_order(order(("MUG", 1)), idempotency_key="k1")
        platform.checkout.cancel(placed.id)
        events = [e for e in relay(platform, hooks) if e.type.startswith("order.")]
        with platform.order_store.unit_of_work() as uow:
            assert uow.outbox.pending(limit=10) == []  # the outbox is not held
        report = hooks.deliver_due()
        # erp got everything; crm was tried once, its other events put back untried
        assert erp.wait_for(len(events)) and len(erp.received) == len(events)
        assert report == DeliveryReport(delivered=len(events), retrying=1, dead=0,
                                        postponed=0)
        (tried, *waiting) = reversed(hooks.deliveries("crm", limit=100).items)
        assert (tried.status, tried.attempts, tried.response_status) == (
            DeliveryStatus.PENDING, 1, None)
        assert tried.last_error is not None and "refused" in tried.last_error.lower()
        # the first wait (the manual clock ticks a microsecond a reading)
        assert timedelta(seconds=9.99) < tried.next_attempt_at - clock() <= timedelta(seconds=10)
        assert all(d.attempts == 0 for d in waiting)
        clock.advance(timedelta(seconds=9))
        assert hooks.deliver_due() == DeliveryReport()  # not due yet; the rest wait behind
        crm.start(port)  # back
        clock.advance(timedelta(seconds=1))
        drain(hooks)
        got = crm.wait_for(len(events))
        assert [b["id"] for b in got] == [e.id for e in events]  # in order, once each
        assert crm.bad_signatures == 0
        assert hooks.deliveries("crm", limit=100).items[-1].attempts == 2


def test_the_last_attempt_makes_a_dead_letter_and_a_replay_sends_it(
    platform: Platform, hooks: WebhookService, erp: Receiver, clock: ManualClock
) -> None:
    hooks.put_endpoint("erp", url=erp.url, secret=SECRET, events=["order.cancelled",
                                                                   "order.confirmed"])
    seed(platform)
    placed = platform.checkout.place_order(order(("MUG", 1)), idempotency_key="k1")
    relay(platform, hooks)
    erp.answer = 500
    for wait in (10, 20, 40):
        assert hooks.deliver_due().retrying == 1
        clock.advance(timedelta(seconds=wait))
    assert hooks.deliver_due() == DeliveryReport(dead=1)
    (dead,) = hooks.deliveries("erp").items
    assert (dead.status, dead.attempts, dead.response_status, dead.last_error) == (
        DeliveryStatus.FAILED, 4, 500, "answered 500")
    # the next event of the order goes on, now that the one before is set aside
    platform.checkout.cancel(placed.id)
    relay(platform, hooks)
    erp.answer = 204
    assert hooks.deliver_due() == DeliveryReport(delivered=1)
    assert hooks.replay("erp", ["whd_unknown"]) == 0
    assert hooks.replay("erp") == 1
    assert hooks.replay("erp") == 0  # queued again already
    assert hooks.deliver_due() == DeliveryReport(delivered=1)
    assert [b["type"] for b in erp.received] == ["order.cancelled", "order.confirmed"]
    again = hooks.delivery(dead.id)
    assert (again.status, again.attempts) == (DeliveryStatus.DELIVERED, 1)
    with pytest.raises(NotFound):
        hooks.replay("crm")


def test_a_redirect_is_an_answer_not_followed(
    platform: Platform, hooks: WebhookService, erp: Receiver
) -> None:
    erp.redirect_to = f"http://127.0.0.1:{erp.port}/elsewhere"
    hooks.put_endpoint("erp", url=erp.url, secret=SECRET, events=["order.confirmed"])
    seed(platform)
    platform.checkout.place_order(order(("MUG", 1)), idempotency_key="k1")
    relay(platform, hooks)
    assert hooks.deliver_due() == DeliveryReport(retrying=1)
    assert erp.requests == [("/hooks", 302)]
    (pending,) = hooks.deliveries("erp").items
    assert (pending.response_status, pending.last_error) == (302, "answered 302")


def test_a_slow_endpoint_times_out_while_another_is_served(
    platform: Platform, erp: Receiver, clock: ManualClock
) -> None:
    assert platform.webhooks is not None
    service = WebhookService(platform.webhooks.store, clock=clock, policy=FAST,
                             transport=HttpTransport(timeout=0.3))
    with receiver(SECRET) as slow:
        slow.delay = 1.0
        service.put_endpoint("slow", url=slow.url, secret=SECRET, events=["order.confirmed"])
        service.put_endpoint("erp", url=erp.url, secret=SECRET, events=["order.confirmed"])
        seed(platform)
        platform.checkout.place_order(order(("MUG", 1)), idempotency_key="k1")
        relay(platform, service)
        assert service.deliver_due() == DeliveryReport(delivered=1, retrying=1)
        (late,) = service.deliveries("slow").items
        assert late.last_error is not None and "timed out" in late.last_error.lower()
        assert len(erp.received) == 1
    service.close()


def test_the_delivery_log_pages_newest_first(
    platform: Platform, hooks: WebhookService, erp: Receiver
) -> None:
    hooks.put_endpoint("erp", url=erp.url, secret=SECRET, events=["stock.adjusted"])
    seed(platform)
    for n in range(5):
        platform.inventory.adjust_stock("MUG", "BER", delta=1, reason=f"count {n}")
    events = [e for e in relay(platform, hooks) if e.type == "stock.adjusted"]
    pages = [hooks.deliveries("erp", limit=3)]
    while pages[-1].next_cursor is not None:
        pages.append(hooks.deliveries("erp", limit=3, cursor=pages[-1].next_cursor))
    assert len(events) >= 5 and len(pages) == -(-len(events) // 3)
    assert [d.event_id for page in pages for d in page.items] == [
        e.id for e in reversed(events)]
    for cursor in ("!!", "bm90LWEtbnVtYmVy", "LTE"):  # not base64, "not-a-number", "-1"
        with pytest.raises(InvalidInput):
            hooks.deliveries("erp", cursor=cursor)
    with pytest.raises(InvalidInput):
        hooks.deliveries("erp", limit=0)


def test_two_processes_delivering_at_once_send_each_event_once(
    platform: Platform, erp: Receiver
) -> None:
    assert platform.webhooks is not None
    store = platform.webhooks.store
    workers = [WebhookService(store, policy=FAST) for _ in range(2)]
    workers[1].owner += "-other"
    workers[0].put_endpoint("erp", url=erp.url, secret=SECRET, events=["stock.adjusted"])
    seed(platform)
    for n in range(12):
        platform.inventory.adjust_stock(["MUG", "POT", "TEA"][n % 3], "BER", delta=1,
                                        reason="count")
    events = [e for e in relay(platform, workers[0]) if e.type == "stock.adjusted"]
    start = threading.Barrier(2)

    def work(service: WebhookService) -> None:
        start.wait()
        for _ in range(10):
            service.deliver_due()

    threads = [threading.Thread(target=work, args=(w,)) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    got = erp.wait_for(len(events))
    assert sorted(erp.ids()) == sorted(e.id for e in events)  # none twice
    assert by_aggregate(got) == by_aggregate([{"id": e.id, "data": dict(e.payload)}
                                              for e in events])
    for service in workers:
        service.close()


def test_the_runner_queues_and_sends_while_an_endpoint_is_down(
    platform: Platform, erp: Receiver
) -> None:
    """The background runner on real threads and the wall clock."""
    assert platform.webhooks is not None
    service = WebhookService(platform.webhooks.store, policy=FAST)
    with receiver(SECRET) as down:
        down.stop()
        service.put_endpoint("erp", url=erp.url, secret=SECRET, events=["order.*"])
        service.put_endpoint("down", url=down.url, secret=SECRET, events=["order.*"])
        seed(platform)
        placed = platform.checkout.place_order(order(("MUG", 1)), idempotency_key="k1")
        platform.checkout.cancel(placed.id)
        runner = BackgroundRunner(platform, webhooks=service, recover_at_start=False,
                                  webhook_interval=timedelta(milliseconds=50))
        with runner:
            got = erp.wait_for(3)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                with platform.order_store.unit_of_work() as uow:
                    if not uow.outbox.pending(limit=1):
                        break
                time.sleep(0.05)
        assert [b["type"] for b in got] == ["order.placed", "order.confirmed",
                                            "order.cancelled"]
        with platform.order_store.unit_of_work() as uow:
            assert uow.outbox.pending(limit=1) == []
        log = service.deliveries("down").items
        assert len(log) == 3 and log[-1].attempts >= 1
        assert runner.failed_webhook_passes == 0


def test_a_pass_ends_when_its_budget_is_spent_and_the_next_goes_on(
    platform: Platform, erp: Receiver, clock: ManualClock
) -> None:
    """An endpoint that answers slowly (but answers) keeps a pass no longer than its
    budget: the rest of its deliveries wait for the next pass, untried, while another
    endpoint's are all sent in the first."""
    assert platform.webhooks is not None
    # the fast endpoint's three deliveries have the whole budget on their own thread: 2 s,
    # so that a busy machine (CI) does not spend it on them; the slow one's take 1.2 s each
    service = WebhookService(platform.webhooks.store, clock=clock, policy=WebhookPolicy(
        jitter=timedelta(0), pass_budget=timedelta(seconds=2)))
    with receiver(SECRET) as slow:
        slow.delay = 1.2
        service.put_endpoint("slow", url=slow.url, secret=SECRET, events=["stock.adjusted"])
        service.put_endpoint("erp", url=erp.url, secret=SECRET, events=["stock.adjusted"])
        seed(platform)  # three SKUs stocked: three aggregates, one event each
        events = [e for e in relay(platform, service) if e.type == "stock.adjusted"]
        assert len({e.aggregate_id for e in events}) == len(events) == 3
        first = service.deliver_due()
        assert len(erp.received) == len(events)  # all of the fast endpoint's
        assert 1 <= len(slow.received) < len(events)  # the slow one's budget ran out
        assert first.postponed == len(events) - len(slow.received)
        assert first.retrying == first.dead == 0
        while len(slow.received) < len(events):
            assert service.deliver_due().delivered >= 1
        assert sorted(b["id"] for b in slow.received) == sorted(e.id for e in events)
        assert all(d.attempts == 1 for d in service.deliveries("slow", limit=100).items)
    service.close()


def test_a_backlog_of_a_down_endpoint_never_starves_another(
    platform: Platform, erp: Receiver, clock: ManualClock
) -> None:
    assert platform.webhooks is not None
    service = WebhookService(platform.webhooks.store, clock=clock, policy=WebhookPolicy(
        batch=10, per_endpoint=5, jitter=timedelta(0)))
    with receiver(SECRET) as down:
        down.stop()
        service.put_endpoint("down", url=down.url, secret=SECRET, events=["stock.adjusted"])
        seed(platform)
        for n in range(30):  # 30 SKUs: 30 aggregates queued for the endpoint that is down
            platform.inventory.upsert_product(f"SKU{n:02d}", name="x", price=Money(1, "EUR"))
            platform.inventory.adjust_stock(f"SKU{n:02d}", "BER", delta=1, reason="count")
        relay(platform, service)
        service.put_endpoint("up", url=erp.url, secret=SECRET, events=["stock.adjusted"])
        platform.inventory.adjust_stock("MUG", "BER", delta=1, reason="count")
        relay(platform, service)
        report = service.deliver_due()
        assert report.delivered == 1 and len(erp.received) == 1
        assert report.retrying == 1  # the one endpoint that is down tried once per pass
    service.close()


def test_a_slow_endpoint_does_not_pace_another_s_events_of_one_order(
    platform: Platform, erp: Receiver, clock: ManualClock
) -> None:
    """An order's events go out one after another (each waits for the one before); a slow
    endpoint's deliveries in the same pass do not make the fast one wait a pass for each."""
    assert platform.webhooks is not None
    service = WebhookService(platform.webhooks.store, clock=clock, policy=WebhookPolicy(
        jitter=timedelta(0), pass_budget=timedelta(seconds=30)))
    with receiver(SECRET) as slow:
        slow.delay = 0.2
        service.put_endpoint("slow", url=slow.url, secret=SECRET, events=["order.*"])
        service.put_endpoint("erp", url=erp.url, secret=SECRET, events=["order.*"])
        seed(platform)
        placed = platform.checkout.place_order(order(("MUG", 1)), idempotency_key="k1")
        platform.checkout.cancel(placed.id)
        events = [e for e in relay(platform, service) if e.type.startswith("order.")]
        assert len(events) == 3
        report = service.deliver_due()  # one pass
        assert [b["type"] for b in erp.received] == ["order.placed", "order.confirmed",
                                                     "order.cancelled"]
        assert [b["id"] for b in slow.received] == [e.id for e in events]
        assert report == DeliveryReport(delivered=6)
    service.close()


def test_an_endpoint_paused_during_a_pass_is_sent_nothing_more(
    platform: Platform, hooks: WebhookService, erp: Receiver
) -> None:
    hooks.put_endpoint("erp", url=erp.url, secret=SECRET, events=["stock.adjusted"])
    seed(platform)  # three SKUs: three deliveries, claimed together
    relay(platform, hooks)
    erp.on_request = lambda: hooks.put_endpoint(
        "erp", url=erp.url, secret=SECRET, events=["stock.adjusted"], active=False) and None
    report = hooks.deliver_due()
    assert report == DeliveryReport(delivered=1, postponed=2)
    assert len(erp.requests) == 1
    waiting = [d for d in hooks.deliveries("erp").items if d.attempts == 0]
    assert len(waiting) == 2 and all(d.status is DeliveryStatus.PENDING for d in waiting)
    assert hooks.deliver_due() == DeliveryReport()  # paused: nothing is claimed


def test_replaying_refuses_what_are_not_delivery_ids(
    platform: Platform, hooks: WebhookService
) -> None:
    hooks.put_endpoint("erp", url="https://erp.example/", secret=SECRET, events=["*"])
    hostile: list[Any] = ["whd_x", ["whd\x00"], ["whd_\udcff"], ["x" * 65], [7],
                          ["whd"] * 101, b"whd", 3]
    for given in hostile:
        with pytest.raises(InvalidInput):
            hooks.replay("erp", given)
    assert hooks.replay("erp", ["whd_unknown", "whd_ERP"]) == 0


def test_a_trickling_answer_is_cut_off_at_the_timeout() -> None:
    """A receiver that sends its answer a byte at a time never holds an attempt past the
    transport's timeout (a read-by-read timeout would wait for ever)."""
    import socket  # noqa: PLC0415 - this test's alone

    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    stop = threading.Event()

    def trickle() -> None:
        connection, _ = listener.accept()
        with connection:
            connection.recv(65536)
            for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 100:
                if stop.wait(0.1):
                    return
                connection.sendall(bytes([byte]))

    threading.Thread(target=trickle, daemon=True).start()
    started = time.monotonic()
    with pytest.raises(DeliveryFailed, match="timed out"):
        HttpTransport(timeout=1.0).post(f"http://127.0.0.1:{port}/", b"{}", {})
    assert time.monotonic() - started < 4  # the timeout bounds the exchange: 1 s, not 10
    stop.set()
    listener.close()


def test_the_deadline_covers_connecting_to_every_address_of_a_name(
    monkeypatch: pytest.MonkeyPatch
) -> None:
    """A name that resolves to addresses that never answer, then to a trickling server: the
    attempt ends at its timeout, not after a timeout per address."""
    import socket  # noqa: PLC0415 - this test's alone

    blackhole = socket.create_server(("127.0.0.1", 0), backlog=0)
    filled = []
    for _ in range(4):  # fill its backlog: further connections are never accepted
        client = socket.socket()
        client.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            client.connect(blackhole.getsockname())
        filled.append(client)
    real = socket.getaddrinfo

    def resolve(host: str, port: int, *args: Any, **kwargs: Any) -> Any:
        if host != "erp.invalid":
            return real(host, port, *args, **kwargs)
        hole = (socket.AF_INET, socket.SOCK_STREAM, 6, "", blackhole.getsockname())
        return [hole, hole, hole]

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    started = time.monotonic()
    with pytest.raises(DeliveryFailed, match="timed out"):
        HttpTransport(timeout=1.0).post("http://erp.invalid/hooks", b"{}", {})
    assert time.monotonic() - started < 2.5  # 1 s for all three, not 1 s each
    for client in filled:
        client.close()
    blackhole.close()


def test_an_ipv6_url_without_a_port_goes_to_the_scheme_s_port(
    monkeypatch: pytest.MonkeyPatch, erp: Receiver
) -> None:
    import socket  # noqa: PLC0415 - this test's alone

    asked: list[tuple[str, int]] = []
    real = socket.getaddrinfo

    def resolve(host: str, port: int, *args: Any, **kwargs: Any) -> Any:
        asked.append((host, port))
        return real("127.0.0.1", erp.port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    body = b'{"id":"evt_1"}'
    headers = {"Commerce-Signature": sign(SECRET, body, int(time.time()))}
    transport = HttpTransport(timeout=2)
    assert transport.post("http://[::1]/hooks", body, headers) == 204
    assert transport.post("http://[fe80::1%25eth0]/hooks", body, headers) == 204
    assert asked == [("::1", 80), ("fe80::1%eth0", 80)]


def test_fast_endpoints_are_served_before_slow_ones_and_no_attempt_starts_late(
    platform: Platform, erp: Receiver, clock: ManualClock
) -> None:
    """One worker, three endpoints that answer slowly and a healthy one: once their speeds
    are known, the healthy endpoint goes first in a pass, and no attempt starts after the
    pass's budget (the rest wait, untried, for the next pass)."""
    assert platform.webhooks is not None
    service = WebhookService(platform.webhooks.store, clock=clock, policy=WebhookPolicy(
        jitter=timedelta(0), workers=1, pass_budget=timedelta(seconds=0.5)))
    with receiver(SECRET) as a, receiver(SECRET) as b, receiver(SECRET) as c:
        for slow in (a, b, c):
            slow.delay = 0.3
        for name, running in (("a", a), ("b", b), ("c", c), ("erp", erp)):
            service.put_endpoint(name, url=running.url, secret=SECRET,
                                 events=["stock.adjusted"])
        seed(platform)  # one event for each of three SKUs, for every endpoint
        relay(platform, service)
        slows = (a, b, c)
        for _ in range(30):  # until every endpoint's speed is known
            service.deliver_due()
            if len(erp.received) == 3 and all(r.requests for r in slows):
                break
        for sku in ("MUG", "POT", "TEA"):  # three more events for everyone
            platform.inventory.adjust_stock(sku, "BER", delta=1, reason="count")
        relay(platform, service)
        before = [len(r.requests) for r in slows]
        service.deliver_due()
        assert len(erp.received) == 6  # the healthy one's three, first, at once
        slow_attempts = sum(len(r.requests) - n for r, n in zip(slows, before, strict=True))
        assert slow_attempts <= 2  # 0.3 s each: none starts after 0.5 s
    service.close()


class _FailingEnqueue:
    """A webhook store whose first ``failures`` queueings fail (the database down)."""

    def __init__(self, inner: Any, failures: int) -> None:
        self.inner = inner
        self.failures = failures
        self.batches: list[int] = []

    def enqueue(self, deliveries: Any) -> int:
        if self.failures:
            self.failures -= 1
            raise StoreError("the order database is down")
        self.batches.append(len(deliveries))
        return int(self.inner.enqueue(deliveries))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_events_that_cannot_be_queued_wait_in_the_outbox_and_none_is_lost(
    platform: Platform, erp: Receiver
) -> None:
    assert platform.webhooks is not None
    store = _FailingEnqueue(platform.webhooks.store, failures=2)
    service = WebhookService(store, policy=FAST)
    service.put_endpoint("erp", url=erp.url, secret=SECRET, events=["order.*"])
    seed(platform)
    placed = platform.checkout.place_order(order(("MUG", 1)), idempotency_key="k1")
    platform.checkout.cancel(placed.id)
    with BackgroundRunner(platform, webhooks=service, recover_at_start=False,
                          webhook_interval=timedelta(milliseconds=50)):
        got = erp.wait_for(3)
    assert [b["type"] for b in got] == ["order.placed", "order.confirmed", "order.cancelled"]
    assert store.failures == 0
    assert sum(store.batches) == 3 and len(store.batches) <= 2  # a batch at a time
    service.close()

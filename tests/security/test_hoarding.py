"""OWASP API6: one customer cannot hold all of a product in orders they never pay for, and
failed attempts do not pile up for ever."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest

from commerce_core import (
    InvalidInput,
    Money,
    OrderStatus,
    PaymentDeclined,
    Platform,
    TooManyOpenOrders,
)
from commerce_core.checkout import CheckoutLimits
from commerce_core.payments import GatewayAuthorization
from commerce_core.testing import ManualClock, SandboxPaymentGateway
from tests.conftest import make_stores, order, seed
from tests.gateway.conftest import ALICE, Client, idem, order_body
from tests.security.conftest import gateway


def _limited(backend: str, folder: Path, clock: ManualClock, **options: object) -> Platform:
    orders, inventory = make_stores(backend, folder)
    return Platform.from_adapters(order_store=orders, inventory_store=inventory,
                                  payment_gateway=SandboxPaymentGateway(), clock=clock,
                                  **options)  # type: ignore[arg-type]


def test_units_of_one_sku_per_order_are_limited(
    backend: str, tmp_path: Path, clock: ManualClock
) -> None:
    with _limited(backend, tmp_path, clock,
                  limits=CheckoutLimits(max_units_per_sku=3)) as platform:
        seed(platform)
        with pytest.raises(InvalidInput) as refused:
            platform.checkout.place_order(order(("MUG", 4), ("TEA", 1)), idempotency_key="k1")
        assert [(e.path, e.message) for e in refused.value.errors] == [
            ("lines[0].quantity", "at most 3 per order")]
        assert platform.orders.list().items == []
        assert platform.checkout.place_order(order(("MUG", 3)), idempotency_key="k2").status \
            is OrderStatus.CONFIRMED


def test_open_orders_per_customer_are_limited_until_one_ships(
    backend: str, tmp_path: Path, clock: ManualClock
) -> None:
    with _limited(backend, tmp_path, clock,
                  limits=CheckoutLimits(max_open_orders=2)) as platform:
        seed(platform)
        first = platform.checkout.place_order(order(("TEA", 1)), idempotency_key="k1")
        platform.checkout.place_order(order(("TEA", 1)), idempotency_key="k2")
        with pytest.raises(TooManyOpenOrders):
            platform.checkout.place_order(order(("TEA", 1)), idempotency_key="k3")
        assert platform.checkout.place_order(order(("TEA", 1), customer="bob"),
                                             idempotency_key="k3").status is \
            OrderStatus.CONFIRMED  # another customer's count
        platform.checkout.ship(first.id, carrier="DHL", tracking_number="1")
        assert platform.checkout.place_order(order(("TEA", 1)), idempotency_key="k4").status \
            is OrderStatus.CONFIRMED


def test_failed_checkouts_are_purged_after_the_retention_with_their_keys(
    backend: str, tmp_path: Path, clock: ManualClock
) -> None:
    with _limited(backend, tmp_path, clock,
                  failed_order_retention=timedelta(days=30)) as platform:
        seed(platform)
        for n in range(3):
            with pytest.raises(PaymentDeclined):
                platform.checkout.place_order(order(("MUG", 1), token="tok_declined"),
                                              idempotency_key=f"d{n}")
        kept = platform.checkout.place_order(order(("MUG", 1)), idempotency_key="ok")
        assert platform.checkout.recover().purged_failed_orders == 0  # not old enough
        clock.advance(timedelta(days=31))
        assert platform.checkout.recover().purged_failed_orders == 3
        assert [o.id for o in platform.orders.scan()] == [kept.id]
        assert platform.orders.idempotency_record("alice", "d0") is None
        assert platform.orders.idempotency_record("alice", "ok") is not None


def test_a_customers_list_leaves_out_failed_attempts_unless_asked(
    shop: Platform, client: Client
) -> None:
    client.post("/v1/orders", key=ALICE, headers=idem("bad"),
                json=order_body(("MUG", 1), token="tok_declined"))
    good = client.post("/v1/orders", key=ALICE, headers=idem("good"),
                       json=order_body(("MUG", 1))).json()
    mine = client.get("/v1/orders", key=ALICE).json()["items"]
    assert [o["id"] for o in mine] == [good["id"]]
    both = client.get("/v1/orders", key=ALICE, params={"status": "failed,confirmed"}).json()
    assert sorted(o["status"] for o in both["items"]) == ["confirmed", "failed"]
    assert client.get("/v1/orders", key=ALICE, params={"status": "failed,nope"}).status_code \
        == 422


def test_the_limits_are_the_servers_settings_too(shop: Platform) -> None:
    shop.checkout.limits = CheckoutLimits(max_units_per_sku=2)
    client = gateway(shop)
    answer = client.post("/v1/orders", key=ALICE, headers=idem("k"),
                         json=order_body(("MUG", 3)))
    assert answer.status_code == 422
    assert answer.json()["errors"] == [{"path": "lines[0].quantity",
                                        "message": "at most 2 per order"}]


class _SlowProvider(SandboxPaymentGateway):
    """Authorizations that take a while, as a real provider's do."""

    def authorize(self, *, token: str, amount: Money, idempotency_key: str,
                  reference: str) -> GatewayAuthorization:
        time.sleep(0.2)
        return super().authorize(token=token, amount=amount, idempotency_key=idempotency_key,
                                 reference=reference)


def test_checkouts_still_running_count_against_the_open_order_limit(
    backend: str, tmp_path: Path
) -> None:
    orders, inventory = make_stores(backend, tmp_path)
    with Platform.from_adapters(order_store=orders, inventory_store=inventory,
                                payment_gateway=_SlowProvider(),
                                limits=CheckoutLimits(max_open_orders=2)) as platform:
        seed(platform)
        outcomes: list[str] = []
        written = threading.Semaphore(0)
        platform.checkout.on_step = (
            lambda step, _order: written.release() if step == "started" else None)

        def buy(n: int) -> None:
            try:
                platform.checkout.place_order(order(("TEA", 1)), idempotency_key=f"k{n}")
                outcomes.append("ok")
            except TooManyOpenOrders:
                outcomes.append("limited")
                written.release()

        threads = [threading.Thread(target=buy, args=(n,)) for n in range(6)]
        for thread in threads:
            # one after the other, each once the one before has written its order (or been
            # refused) while the checkouts before it still run: the limit is checked just
            # before the order is written, not with it (see CheckoutLimits)
            thread.start()
            assert written.acquire(timeout=30)
        for thread in threads:
            thread.join()
        assert sorted(outcomes) == ["limited"] * 4 + ["ok"] * 2


def test_a_repeated_key_is_answered_as_before_whatever_the_limits_say_now(
    backend: str, tmp_path: Path, clock: ManualClock
) -> None:
    with _limited(backend, tmp_path, clock,
                  limits=CheckoutLimits(max_open_orders=1)) as platform:
        seed(platform)
        placed = platform.checkout.place_order(order(("TEA", 1)), idempotency_key="k1")
        again = platform.checkout.place_order(order(("TEA", 1)), idempotency_key="k1")
        assert again.id == placed.id


def test_keys_of_requests_that_made_no_order_go_after_their_retention(
    backend: str, tmp_path: Path, clock: ManualClock
) -> None:
    """Each refund, shipment or adjustment over HTTP keeps its key and answer; a client with
    a fresh key per request would otherwise grow them without end."""
    with _limited(backend, tmp_path, clock,
                  idempotency_retention=timedelta(days=7)) as platform:
        _, claimed = platform.orders.claim_key("", "cancel-1", "f" * 64,
                                               stale_after=timedelta(minutes=1))
        assert claimed
        platform.orders.save_response("", "cancel-1", status=404, body="{}")
        clock.advance(timedelta(days=6))
        platform.checkout.recover()
        assert platform.orders.idempotency_record("", "cancel-1") is not None
        clock.advance(timedelta(days=2))
        platform.checkout.recover()
        assert platform.orders.idempotency_record("", "cancel-1") is None

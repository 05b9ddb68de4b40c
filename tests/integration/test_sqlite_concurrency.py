"""Many threads checking out at once against one SQLite file: no oversell, one order per key."""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path

from commerce_core import (
    CommerceError,
    IdempotencyKeyInUse,
    InsufficientStock,
    OrderStatus,
    Platform,
    RetryPolicy,
)
from commerce_core.testing import SandboxPaymentGateway, check_invariants
from commerce_core_sqlalchemy import SqlAlchemyInventoryStore, SqlAlchemyOrderStore
from tests.conftest import order, seed

THREADS = 8
ORDERS_PER_THREAD = 15


def sqlite_platform(folder: Path, gateway: SandboxPaymentGateway) -> Platform:
    """Both stores on SQLite files, sharing one sandbox whose records the test inspects."""
    return Platform.from_adapters(
        order_store=SqlAlchemyOrderStore.from_url(f"sqlite:///{folder}/orders.db"),
        inventory_store=SqlAlchemyInventoryStore.from_url(f"sqlite:///{folder}/inventory.db"),
        payment_gateway=gateway, retry=RetryPolicy.immediate(),
    )


def test_concurrent_buyers_of_a_scarce_sku_never_oversell(tmp_path: Path) -> None:
    gateway = SandboxPaymentGateway()
    platform = sqlite_platform(tmp_path, gateway)
    seed(platform, {"MUG": 25, "POT": 3, "TEA": 100})
    outcomes: Counter[str] = Counter()
    unexpected: list[BaseException] = []
    lock = threading.Lock()

    def buyer(n: int) -> None:
        for i in range(ORDERS_PER_THREAD):
            quantity = 1 + (n + i) % 3
            token = "tok_declined" if i % 7 == 6 else "tok_visa"
            try:
                platform.checkout.place_order(
                    order(("MUG", quantity), ("TEA", 1), token=token, customer=f"c{n}"),
                    idempotency_key=f"k{i}")
                result = "confirmed"
            except InsufficientStock:
                result = "short"
            except CommerceError as exc:
                result = type(exc).__name__
            except BaseException as exc:  # noqa: BLE001 - collected and asserted on below
                with lock:
                    unexpected.append(exc)
                return
            with lock:
                outcomes[result] += 1

    threads = [threading.Thread(target=buyer, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert unexpected == []
    assert sum(outcomes.values()) == THREADS * ORDERS_PER_THREAD
    confirmed = platform.orders.list(status=OrderStatus.CONFIRMED, limit=100)
    sold = sum(line.quantity for o in confirmed.items for line in o.lines if line.sku == "MUG")
    stock = platform.inventory.stock("MUG")
    assert outcomes["confirmed"] == len(confirmed.items) > 0
    assert outcomes["short"] > 0  # the SKU really ran out under contention
    assert stock.reserved == sold <= 25 and stock.available == 25 - sold >= 0
    check_invariants(platform.order_store, platform.inventory_store, gateway)
    platform.close()


def test_concurrent_duplicates_under_one_key_make_one_order(tmp_path: Path) -> None:
    gateway = SandboxPaymentGateway()
    platform = sqlite_platform(tmp_path, gateway)
    seed(platform)
    results: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(6)

    def client() -> None:
        start.wait()
        try:
            placed = platform.checkout.place_order(order(("MUG", 2)), idempotency_key="same")
            result = placed.id
        except IdempotencyKeyInUse as exc:
            result = f"in-use:{exc.order_id}"
        with lock:
            results.append(result)

    threads = [threading.Thread(target=client) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    (only,) = platform.orders.list().items
    assert all(r in (only.id, f"in-use:{only.id}") for r in results)
    assert only.id in results
    assert len(gateway.authorizations()) == 1
    assert platform.inventory.availability(["MUG"])["MUG"] == 8
    platform.close()

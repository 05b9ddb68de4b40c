"""Processes racing for a voucher's last uses, on SQLite, PostgreSQL and MariaDB: exactly
as many orders get it as its usage limit allows, and a once-per-customer voucher goes to
one of a customer's concurrent checkouts only.

The server backends need their servers: in CI a missing one fails the test, elsewhere it is
skipped with the command that starts it.
"""

from __future__ import annotations

import multiprocessing
from collections import Counter
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

import attrs
import pytest

from commerce_core import (
    CommerceError,
    Money,
    OrderStatus,
    Platform,
    StandardPricing,
    Voucher,
    VoucherKind,
    VoucherNotApplicable,
)
from commerce_core.testing import SandboxPaymentGateway, check_invariants
from commerce_core_sqlalchemy import SqlAlchemyOrderStore, SqlAlchemyPricingRules
from tests.conftest import order, require, seed, server_urls

PROCESSES = 6
ORDERS_PER_PROCESS = 8
LIMIT = 3


def _urls(backend: str, folder: Path) -> tuple[str, str, str]:
    payments = f"sandbox:///{folder}/sandbox.db"
    if backend == "sqlite":
        return f"sqlite:///{folder}/orders.db", f"sqlite:///{folder}/inventory.db", payments
    require(backend)
    orders, inventory = server_urls(backend, folder)
    return orders, inventory, payments


def _priced(urls: tuple[str, str, str]) -> Platform:
    platform = Platform.from_urls(orders=urls[0], inventory=urls[1], payments=urls[2])
    assert isinstance(platform.order_store, SqlAlchemyOrderStore)
    platform.checkout.pricing = StandardPricing(
        SqlAlchemyPricingRules(platform.order_store.engine, create_schema=False))
    return platform


def _buyer(urls: tuple[str, str, str], n: int, voucher: str, same_customer: bool,
           start: Barrier, results: Any) -> None:
    """One process: its checkouts, all with ``voucher``, each from a customer of its own
    (or all from one customer), started together with the other processes."""
    outcomes: Counter[str] = Counter()
    with _priced(urls) as platform:
        start.wait(timeout=60)
        for i in range(ORDERS_PER_PROCESS):
            customer = "eve" if same_customer else f"c-{n}-{i}"
            command = attrs.evolve(order(("TEA", 1), customer=customer), voucher_code=voucher)
            try:
                platform.checkout.place_order(command, idempotency_key=f"k-{n}-{i}")
            except VoucherNotApplicable as exc:
                outcomes[exc.reason] += 1
            except CommerceError as exc:
                outcomes[f"error: {type(exc).__name__}: {exc}"] += 1
            else:
                outcomes["confirmed"] += 1
    results.put(dict(outcomes))


def _race(urls: tuple[str, str, str], voucher: str, *, same_customer: bool) -> Counter[str]:
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(PROCESSES)
    results = context.Queue()
    processes = [context.Process(target=_buyer, args=(urls, n, voucher, same_customer, start,
                                                      results))
                 for n in range(PROCESSES)]
    for process in processes:
        process.start()
    total: Counter[str] = Counter()
    for _ in processes:
        total.update(results.get(timeout=300))
    for process in processes:
        process.join(timeout=60)
        assert process.exitcode == 0
    return total


@pytest.mark.parametrize("backend", ["sqlite", "postgresql", "mariadb"])
def test_processes_racing_for_the_last_uses_never_exceed_the_limit(
    backend: str, tmp_path: Path
) -> None:
    urls = _urls(backend, tmp_path)
    with _priced(urls) as platform:
        seed(platform, {"TEA": 1000})
        pricing = platform.checkout.pricing
        assert isinstance(pricing, StandardPricing)
        pricing.put_voucher(Voucher(code="LAST", kind=VoucherKind.FIXED,
                                    amount=Money(100, "EUR"), usage_limit=LIMIT))
        pricing.put_voucher(Voucher(code="ONCE", kind=VoucherKind.PERCENT, percent_bp=500,
                                    once_per_customer=True))

    limited = _race(urls, "LAST", same_customer=False)
    assert limited == {"confirmed": LIMIT, "used-up": PROCESSES * ORDERS_PER_PROCESS - LIMIT}
    once = _race(urls, "ONCE", same_customer=True)
    assert once == {"confirmed": 1, "already-used": PROCESSES * ORDERS_PER_PROCESS - 1}

    with _priced(urls) as platform:
        confirmed = platform.orders.list(status=OrderStatus.CONFIRMED, limit=100).items
        assert sorted(o.voucher_code or "" for o in confirmed) == ["LAST"] * LIMIT + ["ONCE"]
        assert platform.orders.voucher_uses(["LAST", "ONCE"]) == {"LAST": LIMIT, "ONCE": 1}
        # a cancelled order gives its use back, and the next checkout gets it
        platform.checkout.cancel(next(o.id for o in confirmed if o.voucher_code == "LAST"))
        again = platform.checkout.place_order(
            attrs.evolve(order(("TEA", 1), customer="late"), voucher_code="last"),
            idempotency_key="late")
        assert again.voucher_code == "LAST"
        check_invariants(platform.order_store, platform.inventory_store,
                         SandboxPaymentGateway(tmp_path / "sandbox.db"),
                         voucher_limits={"LAST": LIMIT})

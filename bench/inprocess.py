"""The library in process: `Checkout.place_order` through the public API, sandbox payments."""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import event

from bench.common import ADDRESS, Spec, summary, timed, workload
from bench.floor import Floor
from commerce_core import (
    Address,
    CommerceError,
    Money,
    OrderItem,
    PlaceOrder,
    Platform,
    ShippingOption,
    StandardPricing,
    TaxRate,
    Voucher,
    VoucherKind,
)
from commerce_core_sqlalchemy import SqlAlchemyPricingRules

WARMUP = 50
#: orders whose statements and commits are counted (after the timed run)
COUNTED = 100

#: a priced order: standard shipping to Germany, German VAT added, a 5 % voucher (no limit
#: of uses, so every order redeems it: a voucher use is written with each)
SHIPPING, VOUCHER = "standard", "BENCH5"


def open_platform(orders_url: str, inventory_url: str, *, priced: bool = False) -> Platform:
    platform = Platform.from_urls(orders=orders_url, inventory=inventory_url,
                                  payments="sandbox://")
    if priced:
        pricing = StandardPricing(SqlAlchemyPricingRules(
            platform.order_store.engine, create_schema=False))  # type: ignore[attr-defined]
        pricing.put_shipping_option(ShippingOption(
            code=SHIPPING, name="Standard", price=Money(495, "EUR"), countries=["DE"]))
        pricing.put_tax_rate(TaxRate(country="DE", rate_bp=1900))
        pricing.put_voucher(Voucher(code=VOUCHER, kind=VoucherKind.PERCENT, percent_bp=500,
                                    name="5 % off"))
        platform.checkout.pricing = pricing
    return platform


def checkout_of(platform: Platform, *, priced: bool = False) -> Callable[[Spec], Any]:
    address = Address(ADDRESS["name"], ADDRESS["line1"], ADDRESS["city"],
                      ADDRESS["postal_code"], ADDRESS["country"])
    extra: dict[str, Any] = ({"shipping_option": SHIPPING, "voucher_code": VOUCHER}
                             if priced else {})

    def run(spec: Spec) -> Any:
        return platform.checkout.place_order(PlaceOrder(
            customer_id=spec.customer, lines=[OrderItem(s, q) for s, q in spec.lines],
            payment_token="tok_visa", shipping_address=address, **extra,
        ), idempotency_key=spec.key)

    return run


class StatementCount:
    """Statements sent and transactions committed on the platform's two store engines. A
    commit counts only if its transaction wrote: a unit of work that reads first and then
    writes ends the reads' autocommit "transaction" with a commit that does nothing, which
    SQLAlchemy reports all the same. (Listening makes every statement go SQLAlchemy's usual
    way: count in a run that is not timed.)"""

    def __init__(self, platform: Platform) -> None:
        self.statements = self.commits = 0
        self._wrote: set[int] = set()
        stores: list[Any] = [platform.order_store, platform.inventory_store]  # SQLAlchemy's
        self.engines = [store.engine for store in stores]
        for engine in self.engines:
            event.listen(engine, "before_cursor_execute", self._statement)
            event.listen(engine, "commit", self._commit)

    def _statement(self, connection: Any, _cursor: Any, statement: str, *_: Any) -> None:
        self.statements += 1
        if not statement.lstrip().upper().startswith("SELECT"):
            self._wrote.add(id(connection))

    def _commit(self, connection: Any) -> None:
        if id(connection) in self._wrote:
            self._wrote.discard(id(connection))
            self.commits += 1

    def close(self) -> None:
        for engine in self.engines:
            event.remove(engine, "before_cursor_execute", self._statement)
            event.remove(engine, "commit", self._commit)


def single(kind: str, orders_url: str, inventory_url: str, count: int, *,
           priced: bool = False) -> dict[str, Any]:
    """One client, one order after another: ``kind`` is ``floor`` or ``library`` (with
    ``priced`` orders: shipping, tax and a voucher). The library's figures add the process
    CPU time per order (this process: the client and the library, not a database server)
    and the statements and commits per order."""
    run: Callable[[Spec], Any]
    counts: StatementCount | None = None
    if kind == "floor":
        floor = Floor(orders_url, inventory_url)
        run, close = floor.checkout, floor.close
    else:
        platform = open_platform(orders_url, inventory_url, priced=priced)
        run, close = checkout_of(platform, priced=priced), platform.close
    try:
        timed(run, workload(WARMUP, seed=99, start=10**7))
        cpu = time.process_time()
        latencies, elapsed = timed(run, workload(count, seed=1))
        cpu = time.process_time() - cpu
        if kind != "floor":
            # counted in a run of their own: statement listeners make the stores run every
            # statement SQLAlchemy's usual way (prepared statements would bypass them), which
            # the timed run must not measure
            counts = StatementCount(platform)
            timed(run, workload(COUNTED, seed=3, start=2 * 10**7))
            counts.close()
    finally:
        close()
    figures = summary(latencies, elapsed, clients=1)
    if counts is not None:
        figures.update(cpu_ms_per_order=round(cpu * 1000 / count, 3),
                       statements_per_order=round(counts.statements / COUNTED, 2),
                       commits_per_order=round(counts.commits / COUNTED, 2))
    return figures


def _split(specs: Sequence[Spec], parts: int) -> list[list[Spec]]:
    return [list(specs[i::parts]) for i in range(parts)]


def _client(run: Callable[[Spec], Any], specs: Sequence[Spec]) -> tuple[list[float], int]:
    """One client placing its orders one after another: the latencies, and how many were
    refused (a refusal is timed like any answer)."""
    latencies, errors = [], 0
    for spec in specs:
        begin = time.perf_counter()
        try:
            run(spec)
        except CommerceError:
            errors += 1
        latencies.append(time.perf_counter() - begin)
    return latencies, errors


def threads(orders_url: str, inventory_url: str, count: int, clients: int) -> dict[str, Any]:
    """``clients`` threads sharing one platform (and its connection pools)."""
    platform = open_platform(orders_url, inventory_url)
    run = checkout_of(platform)
    timed(run, workload(WARMUP, seed=98, start=10**7))
    shares = _split(workload(count, seed=2), clients)
    results: list[tuple[list[float], int]] = [([], 0)] * clients
    start = threading.Barrier(clients + 1)

    def client(index: int) -> None:
        start.wait()
        results[index] = _client(run, shares[index])

    workers = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for worker in workers:
        worker.start()
    start.wait()
    began = time.perf_counter()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - began
    platform.close()
    return summary([x for lat, _ in results for x in lat], elapsed, clients=clients,
                   errors=sum(e for _, e in results), mode="threads")


def _process_client(orders_url: str, inventory_url: str, specs: list[Spec],
                    ready: Any, go: Any, out: Any) -> None:
    platform = open_platform(orders_url, inventory_url)
    run = checkout_of(platform)
    timed(run, [Spec(s.customer, s.lines, "warm-" + s.key) for s in specs[:10]])
    ready.release()
    go.wait()
    result = _client(run, specs)
    platform.close()
    out.put(result)


def processes(orders_url: str, inventory_url: str, count: int, clients: int) -> dict[str, Any]:
    """``clients`` processes, each with its own platform, started together."""
    context = multiprocessing.get_context("spawn")
    ready, go, out = context.Semaphore(0), context.Event(), context.Queue()
    shares = _split(workload(count, seed=3), clients)
    workers = [context.Process(target=_process_client,
                               args=(orders_url, inventory_url, shares[i], ready, go, out))
               for i in range(clients)]
    for worker in workers:
        worker.start()
    for _ in workers:
        ready.acquire()
    began = time.perf_counter()
    go.set()
    results = [out.get() for _ in workers]
    elapsed = time.perf_counter() - began
    for worker in workers:
        worker.join()
    return summary([x for lat, _ in results for x in lat], elapsed, clients=clients,
                   errors=sum(e for _, e in results), mode="processes")

"""The library in process: `Checkout.place_order` through the public API, sandbox payments."""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from bench.common import ADDRESS, Spec, summary, timed, workload
from bench.floor import Floor
from commerce_core import Address, CommerceError, OrderItem, PlaceOrder, Platform

WARMUP = 50


def open_platform(orders_url: str, inventory_url: str) -> Platform:
    return Platform.from_urls(orders=orders_url, inventory=inventory_url, payments="sandbox://")


def checkout_of(platform: Platform) -> Callable[[Spec], Any]:
    address = Address(ADDRESS["name"], ADDRESS["line1"], ADDRESS["city"],
                      ADDRESS["postal_code"], ADDRESS["country"])

    def run(spec: Spec) -> Any:
        return platform.checkout.place_order(PlaceOrder(
            customer_id=spec.customer, lines=[OrderItem(s, q) for s, q in spec.lines],
            payment_token="tok_visa", shipping_address=address,
        ), idempotency_key=spec.key)

    return run


def single(kind: str, orders_url: str, inventory_url: str, count: int) -> dict[str, Any]:
    """One client, one order after another: ``kind`` is ``floor`` or ``library``."""
    run: Callable[[Spec], Any]
    if kind == "floor":
        floor = Floor(orders_url, inventory_url)
        run, close = floor.checkout, floor.close
    else:
        platform = open_platform(orders_url, inventory_url)
        run, close = checkout_of(platform), platform.close
    try:
        timed(run, workload(WARMUP, seed=99, start=10**7))
        latencies, elapsed = timed(run, workload(count, seed=1))
    finally:
        close()
    return summary(latencies, elapsed, clients=1)


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

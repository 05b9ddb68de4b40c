"""The load generator, run as its own process: ``concurrency`` clients in a closed loop, each
placing orders over HTTP one after another on its own keep-alive connection.

``python -m bench.load URL --keys K1,K2 --concurrency 16 --orders 800 [--hot SKU]``
prints one JSON line: orders/s, p50, p99 and the answers by status.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections import Counter

import httpx

from bench.common import ADDRESS, summary, workload


async def _run(url: str, keys: list[str], concurrency: int, count: int, hot: str | None,
               seed: int) -> dict[str, object]:
    specs = workload(count, seed=seed, hot=hot)
    queue: asyncio.Queue[int] = asyncio.Queue()
    for index in range(count):
        queue.put_nowait(index)
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:
        async def buyer(number: int) -> None:
            headers = {"Authorization": f"Bearer {keys[number % len(keys)]}"}
            while True:
                try:
                    index = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                spec = specs[index]
                body = {"lines": [{"sku": s, "quantity": q} for s, q in spec.lines],
                        "payment": {"token": "tok_visa"}, "shipping_address": ADDRESS}
                begin = time.perf_counter()
                try:
                    response = await client.post(
                        "/v1/orders", json=body,
                        headers={**headers, "Idempotency-Key": f"{spec.key}-{number}"})
                    statuses[str(response.status_code)] += 1
                except httpx.HTTPError as exc:
                    statuses[type(exc).__name__] += 1
                    print(f"request {index}: {type(exc).__name__}: {exc!r} after "
                          f"{time.perf_counter() - begin:.3f} s", file=sys.stderr)
                latencies.append(time.perf_counter() - begin)

        began, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(buyer(n) for n in range(concurrency)))
        elapsed, cpu = time.perf_counter() - began, time.process_time() - cpu
    # an error is anything but a confirmed order (201), or a refusal for want of stock (409)
    errors = sum(n for status, n in statuses.items() if status not in ("201", "409"))
    return summary(latencies, elapsed, errors=errors, clients=concurrency,
                   statuses=dict(statuses), confirmed=statuses["201"],
                   load_generator_cpu=round(cpu / elapsed, 2))  # cores the generator used


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--keys", required=True)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--orders", type=int, default=800)
    parser.add_argument("--hot", default=None)
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args()
    result = asyncio.run(_run(args.url, args.keys.split(","), args.concurrency, args.orders,
                              args.hot, args.seed))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The async facade: the core runs on a bounded pool of its own, never on the event loop,
with the same answers and errors."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from commerce_core import InsufficientStock, OrderStatus, Platform
from commerce_core.aio import AsyncPlatform
from tests.conftest import order, seed


def test_calls_are_awaited_with_the_same_answers_and_errors(platform: Platform) -> None:
    seed(platform, {"MUG": 2})

    async def main() -> None:
        shop = AsyncPlatform(platform, max_workers=2)
        placed = await shop.checkout.place_order(order(("MUG", 1)), idempotency_key="k")
        assert placed.status is OrderStatus.CONFIRMED
        assert (await shop.orders.get(placed.id)) == placed
        assert (await shop.inventory.availability(["MUG"])) == {"MUG": 1}
        with pytest.raises(InsufficientStock):
            await shop.checkout.place_order(order(("MUG", 5)), idempotency_key="k2")
        assert shop.checkout.sync is platform.checkout
        report = await shop.run(platform.checkout.recover)
        assert report.failed == ()
        assert shop.webhooks is not None
        endpoint, created = await shop.webhooks.put_endpoint(
            "erp", url="https://erp.example/hooks", secret="whsec_0123456789abcdef",
            events=["order.*"])
        assert created and (await shop.webhooks.endpoint("erp")) == endpoint

    asyncio.run(main())


def test_the_pool_is_bounded_and_the_loop_stays_free() -> None:
    from commerce_core.testing import (  # noqa: PLC0415
        InMemoryInventoryStore,
        InMemoryOrderStore,
        SandboxPaymentGateway,
    )

    platform = Platform.from_adapters(order_store=InMemoryOrderStore(),
                                      inventory_store=InMemoryInventoryStore(),
                                      payment_gateway=SandboxPaymentGateway())
    running: list[int] = []
    most = {"n": 0}
    names: set[str] = set()
    lock = threading.Lock()

    def slow_read(sku: str) -> str:  # a library call that takes a while
        with lock:
            running.append(1)
            most["n"] = max(most["n"], len(running))
            names.add(threading.current_thread().name)
        time.sleep(0.1)
        with lock:
            running.pop()
        return sku

    platform.inventory.get_product = slow_read  # type: ignore[method-assign,assignment]

    async def main() -> int:
        shop = AsyncPlatform(platform, max_workers=2)
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.01)

        beat = asyncio.create_task(ticker())
        results = await asyncio.gather(*(shop.inventory.get_product(f"S{n}") for n in range(6)))
        beat.cancel()
        assert results == [f"S{n}" for n in range(6)]
        await shop.aclose()
        return ticks

    ticks = asyncio.run(main())
    assert most["n"] == 2  # never more than the pool at once
    assert names and all(name.startswith("commerce-async") for name in names)
    assert ticks >= 10  # the event loop kept running while the calls waited


def test_closing_the_facade_closes_the_platform(platform: Platform) -> None:
    closed: list[bool] = []
    really_close = platform.close

    def close() -> None:  # counted, and really closed (the stores' connections)
        closed.append(True)
        really_close()

    platform.close = close  # type: ignore[method-assign]

    async def main() -> None:
        async with AsyncPlatform(platform):
            pass

    asyncio.run(main())
    assert closed == [True]
    with pytest.raises(ValueError, match="max_workers"):
        AsyncPlatform(platform, max_workers=0)


def test_calls_see_the_caller_s_context_variables(platform: Platform) -> None:
    import contextvars  # noqa: PLC0415

    request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
    seen: list[str] = []

    def read(sku: str) -> str:
        seen.append(request_id.get())
        return sku

    platform.inventory.get_product = read  # type: ignore[method-assign,assignment]

    async def main() -> None:
        shop = AsyncPlatform(platform, max_workers=1)
        request_id.set("req-42")
        await shop.inventory.get_product("MUG")

    asyncio.run(main())
    assert seen == ["req-42"]

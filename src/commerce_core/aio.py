"""Calling the library from async code: every call runs the synchronous core on a bounded
thread pool of the facade's own, so a busy shop never holds the event loop, and never takes
the host's default thread pool (the one its own blocking calls, and its framework's, wait
for).

    shop = AsyncPlatform(platform, max_workers=8)
    order = await shop.checkout.place_order(command, idempotency_key=key)
    page = await shop.orders.list(customer_id="alice")
    await shop.aclose()          # the pool, then the platform

Each service of the platform (``checkout``, ``orders``, ``inventory``) is there with the
same methods, each a coroutine function taking the same arguments and raising the same
errors. A call that is cancelled (its task, or a timeout around it) stops waiting; the
synchronous call it started runs to its end on its thread, as any of them may after a
crash: the saga is resumable, and recovery finishes what it leaves.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Generic, TypeVar

from commerce_core.checkout import Checkout
from commerce_core.inventory import InventoryService
from commerce_core.orders import OrderService
from commerce_core.platform import Platform
from commerce_core.webhooks import WebhookService

__all__ = ["AsyncPlatform", "AsyncService"]

S = TypeVar("S")


async def _in_pool(pool: ThreadPoolExecutor, call: Callable[[], Any]) -> Any:
    """``call()`` on ``pool``, in a copy of the caller's context (its context variables: a
    request id, a trace), as `asyncio.to_thread` does on the default pool."""
    context = contextvars.copy_context()
    return await asyncio.get_running_loop().run_in_executor(pool, context.run, call)


class AsyncService(Generic[S]):
    """A service whose methods are awaited: each runs on the facade's pool. Attributes that
    are not methods (``checkout.pricing``) are read as they are."""

    def __init__(self, service: S, pool: ThreadPoolExecutor) -> None:
        self._service = service
        self._pool = pool

    @property
    def sync(self) -> S:
        """The synchronous service itself (for a call from a thread of one's own)."""
        return self._service

    def __getattr__(self, name: str) -> Any:
        found = getattr(self._service, name)
        if name.startswith("_") or not callable(found):
            return found
        pool = self._pool

        @functools.wraps(found)
        async def call(*args: Any, **kwargs: Any) -> Any:
            return await _in_pool(pool, functools.partial(found, *args, **kwargs))

        return call


class AsyncPlatform:
    """The platform for async hosts: ``checkout``, ``orders``, ``inventory`` and ``webhooks``
    (``None`` as on the platform when no store keeps them) with awaited methods, on a pool
    of ``max_workers`` threads of its own (at most that many library calls at once; the
    rest wait, cheaply, on the event loop)."""

    def __init__(self, platform: Platform, *, max_workers: int = 8) -> None:
        if max_workers < 1:
            raise ValueError("max_workers must be at least 1")
        self.platform = platform
        self._pool = ThreadPoolExecutor(max_workers=max_workers,
                                        thread_name_prefix="commerce-async")
        self.checkout: AsyncService[Checkout] = AsyncService(platform.checkout, self._pool)
        self.orders: AsyncService[OrderService] = AsyncService(platform.orders, self._pool)
        self.inventory: AsyncService[InventoryService] = AsyncService(platform.inventory,
                                                                      self._pool)
        self.webhooks: AsyncService[WebhookService] | None = (
            None if platform.webhooks is None else AsyncService(platform.webhooks, self._pool))

    async def run(self, function: Callable[..., S], *args: Any, **kwargs: Any) -> S:
        """Any other synchronous call of the library (a `BackgroundRunner.sweep`, a
        store's own method) on the facade's pool."""
        result: S = await _in_pool(self._pool, functools.partial(function, *args, **kwargs))
        return result

    async def aclose(self) -> None:
        """Wait for the calls in progress, then close the platform."""
        await asyncio.get_running_loop().run_in_executor(
            None, functools.partial(self._pool.shutdown, wait=True))
        self.platform.close()

    async def __aenter__(self) -> AsyncPlatform:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

"""Transactions the database gave up on (deadlock, serialization failure) run again, whole."""

from __future__ import annotations

from types import TracebackType
from typing import Any, Self

import pytest

from commerce_core import Money, Platform, RetryPolicy, TransientStoreError
from commerce_core.testing import (
    InMemoryInventoryStore,
    InMemoryOrderStore,
    SandboxPaymentGateway,
    check_invariants,
)
from tests.conftest import order, seed


class _FlakyUnitOfWork:
    def __init__(self, inner: Any, store: FlakyStore) -> None:
        self._inner = inner
        self._store = store

    def __enter__(self) -> Self:
        self._inner.__enter__()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._inner.__exit__(exc_type, exc, tb)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def commit(self) -> None:
        if self._store.failures_left > 0:
            self._store.failures_left -= 1
            self._store.failed += 1
            raise TransientStoreError("deadlock detected (injected)")  # nothing committed
        self._inner.commit()


class FlakyStore:
    """Wraps a store; the next ``failures_left`` commits fail as a deadlock would."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.failures_left = 0
        self.failed = 0

    def unit_of_work(self) -> _FlakyUnitOfWork:
        return _FlakyUnitOfWork(self.inner.unit_of_work(), self)

    def close(self) -> None:
        self.inner.close()


def _platform(attempts: int) -> tuple[Platform, FlakyStore, FlakyStore]:
    orders, inventory = FlakyStore(InMemoryOrderStore()), FlakyStore(InMemoryInventoryStore())
    platform = Platform.from_adapters(
        order_store=orders, inventory_store=inventory, payment_gateway=SandboxPaymentGateway(),
        retry=RetryPolicy.immediate(), store_retry=RetryPolicy.immediate(attempts),
    )
    seed(platform)
    return platform, orders, inventory


def test_every_step_of_a_checkout_survives_a_deadlock() -> None:
    platform, orders, inventory = _platform(attempts=3)
    for store in (orders, inventory):
        store.failures_left = 2  # the first two commits of each store fail
    placed = platform.checkout.place_order(order(("MUG", 2)), idempotency_key="k1")
    assert placed.status.value == "confirmed"
    assert orders.failed == inventory.failed == 2
    assert platform.inventory.stock("MUG").reserved == 2
    check_invariants(platform.order_store, platform.inventory_store)


def test_a_stock_adjustment_is_written_once_after_a_retry() -> None:
    platform, _, inventory = _platform(attempts=2)
    inventory.failures_left = 1
    platform.inventory.adjust_stock("TEA", "AMS", delta=5, reason="receipt")
    assert platform.inventory.stock("TEA").on_hand == 55
    assert [m.delta for m in platform.inventory.movements("TEA")] == [5, 50]


def test_when_the_retries_run_out_the_error_is_raised_and_nothing_is_written() -> None:
    platform, _, inventory = _platform(attempts=2)
    inventory.failures_left = 2
    with pytest.raises(TransientStoreError):
        platform.inventory.upsert_product("NEW", name="New", price=Money(100, "EUR"))
    assert platform.inventory.get_products(["NEW"]) == {}

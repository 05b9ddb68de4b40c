"""The composition root: a platform wired from URLs or from adapter instances."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from types import TracebackType
from typing import Any, Self

from commerce_core._registry import (
    INVENTORY_STORES,
    ORDER_STORES,
    PAYMENT_GATEWAYS,
    load_adapter,
)
from commerce_core.checkout import Checkout, StepHook
from commerce_core.clock import Clock, system_clock
from commerce_core.events import EventPublisher, OutboxRelay
from commerce_core.inventory import InventoryService, InventoryStore
from commerce_core.orders import OrderService, OrderStore
from commerce_core.payments import PaymentGateway, PaymentService
from commerce_core.retry import RetryPolicy

__all__ = ["Platform"]


class Platform:
    """The e-commerce platform: services wired to their stores and payment gateway.

    Build it with `from_urls()` or `from_adapters()`; nothing happens at import time.
    The services are attributes: `inventory`, `orders` (queries) and
    `checkout` (every command that spans stores).
    """

    def __init__(
        self, *, order_store: OrderStore, inventory_store: InventoryStore,
        payment_gateway: PaymentGateway, clock: Clock = system_clock,
        retry: RetryPolicy | None = None, reservation_ttl: timedelta = timedelta(minutes=15),
        on_step: StepHook | None = None, store_retry: RetryPolicy | None = None,
        low_stock_threshold: int | None = None,
    ) -> None:
        self.clock = clock
        self.order_store = order_store
        self.inventory_store = inventory_store
        self.payment_gateway = payment_gateway
        self.inventory = InventoryService(inventory_store, clock=clock, store_retry=store_retry,
                                          low_stock_threshold=low_stock_threshold)
        self.orders = OrderService(order_store, clock=clock)
        self.payments = PaymentService(payment_gateway, retry=retry)
        self.checkout = Checkout(
            orders=order_store, inventory=self.inventory, payments=self.payments, clock=clock,
            reservation_ttl=reservation_ttl, on_step=on_step, store_retry=store_retry,
        )

    @classmethod
    def from_adapters(
        cls, *, order_store: OrderStore, inventory_store: InventoryStore,
        payment_gateway: PaymentGateway, clock: Clock = system_clock,
        retry: RetryPolicy | None = None, reservation_ttl: timedelta = timedelta(minutes=15),
        on_step: StepHook | None = None, store_retry: RetryPolicy | None = None,
        low_stock_threshold: int | None = None,
    ) -> Platform:
        """Wire adapter instances you built yourself (always works; URLs are sugar)."""
        return cls(order_store=order_store, inventory_store=inventory_store,
                   payment_gateway=payment_gateway, clock=clock, retry=retry,
                   reservation_ttl=reservation_ttl, on_step=on_step, store_retry=store_retry,
                   low_stock_threshold=low_stock_threshold)

    @classmethod
    def from_urls(
        cls, *, orders: str, inventory: str, payments: str, clock: Clock = system_clock,
        retry: RetryPolicy | None = None, reservation_ttl: timedelta = timedelta(minutes=15),
        on_step: StepHook | None = None, store_retry: RetryPolicy | None = None,
        low_stock_threshold: int | None = None,
    ) -> Platform:
        """Find each adapter by its URL scheme, e.g.
        ``Platform.from_urls(orders="sqlite:///var/orders.db",
        inventory="sqlite:///var/inventory.db", payments="sandbox://")``.

        Schemes come from the entry-point groups ``commerce_core.order_stores``,
        ``commerce_core.inventory_stores`` and ``commerce_core.payment_gateways``; a missing
        adapter raises `AdapterNotInstalled` saying what to install.
        """
        order_store = load_adapter(ORDER_STORES, orders)
        inventory_store = None
        try:
            inventory_store = load_adapter(INVENTORY_STORES, inventory)
            payment_gateway = load_adapter(PAYMENT_GATEWAYS, payments)
        except BaseException:
            order_store.close()
            if inventory_store is not None:
                inventory_store.close()
            raise
        return cls(order_store=order_store, inventory_store=inventory_store,
                   payment_gateway=payment_gateway, clock=clock, retry=retry,
                   reservation_ttl=reservation_ttl, on_step=on_step, store_retry=store_retry,
                   low_stock_threshold=low_stock_threshold)

    def outbox_relays(
        self, publishers: Callable[[], EventPublisher], **options: Any
    ) -> list[OutboxRelay]:
        """One relay per store (``orders``, ``inventory``), each with a publisher of its own
        from ``publishers`` (a broker connection is not shared between threads; return the
        same one for in-process delivery); ``options`` go to `OutboxRelay` (``batch_size``,
        ``lease``, ``owner``, ``retention``)."""
        return [
            OutboxRelay(store, publishers(), name=name, clock=self.clock, **options)
            for store, name in ((self.order_store, "orders"),
                                (self.inventory_store, "inventory"))
        ]

    def close(self) -> None:
        """Release the stores' connections."""
        self.order_store.close()
        self.inventory_store.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

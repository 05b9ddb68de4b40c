"""The composition root: a platform wired from URLs or from adapter instances."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from types import TracebackType
from typing import Any, Self, TypedDict, Unpack

from commerce_core._registry import (
    INVENTORY_STORES,
    ORDER_STORES,
    PAYMENT_GATEWAYS,
    load_adapter,
)
from commerce_core.checkout import Checkout, CheckoutLimits, StepHook
from commerce_core.clock import Clock, system_clock
from commerce_core.events import EventPublisher, OutboxRelay
from commerce_core.inventory import InventoryService, InventoryStore
from commerce_core.orders import OrderService, OrderStore
from commerce_core.payments import PaymentGateway, PaymentService
from commerce_core.pricing import PricingPolicy
from commerce_core.retry import RetryPolicy
from commerce_core.telemetry import Telemetry
from commerce_core.webhooks import WebhookService, WebhookStore

__all__ = ["Platform", "PlatformOptions"]


class PlatformOptions(TypedDict, total=False):
    """The options of a `Platform`, declared once for its three constructors.

    ``clock``: the time (a `ManualClock` in tests). ``retry``: the policy for the payment
    provider's transient faults; ``store_retry``: for the stores' (`RetryPolicy.for_store`).
    ``reservation_ttl``: how long a checkout's reservation lasts (15 minutes). ``on_step``:
    called after every durable saga step (tracing). ``low_stock_threshold``: available units
    at or below which a reservation writes ``stock.low``. ``limits``: what one customer may
    order (`CheckoutLimits`). ``failed_order_retention``: how long failed checkouts are kept
    before `Checkout.recover` deletes them with their idempotency records (``None``: kept).
    ``idempotency_retention``: how long the idempotency records of requests that made no
    order (a driving adapter's, for refunds, shipments, adjustments) are kept (``None``: kept).
    ``pricing``: what orders cost beyond their lines (`PricingPolicy`; `LinesOnly` unless
    given, `StandardPricing` for shipping options, tax rates and vouchers). ``webhooks``:
    where outbound webhooks' endpoints and deliveries are kept (`WebhookStore`); unless
    given, the order store's own if it offers one (``order_store.webhook_store()``: the
    stores of this repository do). ``telemetry``: where the checkout, the saga's steps and
    the provider calls are reported, as spans and events (`commerce_core.telemetry`;
    nothing by default).
    """

    clock: Clock
    retry: RetryPolicy | None
    store_retry: RetryPolicy | None
    reservation_ttl: timedelta
    on_step: StepHook | None
    low_stock_threshold: int | None
    limits: CheckoutLimits | None
    failed_order_retention: timedelta | None
    idempotency_retention: timedelta | None
    pricing: PricingPolicy | None
    webhooks: WebhookStore | None
    telemetry: Telemetry | None


class Platform:
    """The e-commerce platform: services wired to their stores and payment gateway.

    Build it with `from_urls()` or `from_adapters()`; nothing happens at import time.
    The services are attributes: `inventory`, `orders` (queries),
    `checkout` (every command that spans stores) and `webhooks` (outbound webhooks;
    ``None`` when no store keeps them).
    """

    def __init__(
        self, *, order_store: OrderStore, inventory_store: InventoryStore,
        payment_gateway: PaymentGateway, **options: Unpack[PlatformOptions],
    ) -> None:
        clock = options.get("clock", system_clock)
        store_retry = options.get("store_retry")
        self.clock = clock
        self.order_store = order_store
        self.inventory_store = inventory_store
        self.payment_gateway = payment_gateway
        self.inventory = InventoryService(
            inventory_store, clock=clock, store_retry=store_retry,
            low_stock_threshold=options.get("low_stock_threshold"))
        self.orders = OrderService(order_store, clock=clock)
        telemetry = options.get("telemetry")
        self.payments = PaymentService(payment_gateway, retry=options.get("retry"),
                                       telemetry=telemetry)
        self.checkout = Checkout(
            orders=order_store, inventory=self.inventory, payments=self.payments, clock=clock,
            reservation_ttl=options.get("reservation_ttl", timedelta(minutes=15)),
            on_step=options.get("on_step"), store_retry=store_retry,
            limits=options.get("limits"),
            failed_order_retention=options.get("failed_order_retention"),
            idempotency_retention=options.get("idempotency_retention"),
            pricing=options.get("pricing"), telemetry=telemetry,
        )
        webhook_store = options.get("webhooks")
        offered = getattr(order_store, "webhook_store", None)
        if webhook_store is None and callable(offered):
            webhook_store = offered()
        self.webhooks: WebhookService | None = (
            None if webhook_store is None else WebhookService(webhook_store, clock=clock))

    @classmethod
    def from_adapters(
        cls, *, order_store: OrderStore, inventory_store: InventoryStore,
        payment_gateway: PaymentGateway, **options: Unpack[PlatformOptions],
    ) -> Platform:
        """Wire adapter instances you built yourself (always works; URLs are sugar)."""
        return cls(order_store=order_store, inventory_store=inventory_store,
                   payment_gateway=payment_gateway, **options)

    @classmethod
    def from_urls(
        cls, *, orders: str, inventory: str, payments: str, **options: Unpack[PlatformOptions],
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
                   payment_gateway=payment_gateway, **options)

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
        """Release the stores' connections, and the payment gateway's if it has a
        ``close()`` (the port's one optional method)."""
        try:
            if self.webhooks is not None:
                self.webhooks.close()
            self.order_store.close()
            self.inventory_store.close()
        finally:
            close = getattr(self.payment_gateway, "close", None)
            if callable(close):
                close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

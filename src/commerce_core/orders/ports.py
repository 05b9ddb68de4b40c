"""The order store port: orders, their payments and idempotency records, in one database."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Protocol, runtime_checkable

import attrs

from commerce_core.events import OutboxRepository
from commerce_core.orders.model import IdempotencyRecord, Order, OrderStatus

# Payment records live in the order database, so the order store also keeps them.
from commerce_core.payments.model import Payment
from commerce_core.unit_of_work import UnitOfWork

__all__ = [
    "IdempotencyRepository",
    "NotificationRepository",
    "OrderReports",
    "OrderRepository",
    "OrderStore",
    "OrderUnitOfWork",
    "PaymentRepository",
    "RedemptionRepository",
    "SummaryRow",
]


class OrderRepository(Protocol):
    def get(self, order_id: str) -> Order | None:
        """The order with everything on it (lines, shipments, returns, adjustments, taxes,
        voucher, e-mail, metadata), or None."""
    def add(self, order: Order) -> None:
        """Insert; raises `Conflict` if the id is taken."""
    def update(self, order: Order) -> Order:
        """Write a changed order if its ``version`` is still the stored one; return it with the
        next version, or raise `ConcurrencyConflict`."""
    def list(
        self, *, customer_id: str | None, status: OrderStatus | Collection[OrderStatus] | None,
        before: str | None, limit: int,
    ) -> Sequence[Order]:
        """Newest first (by id, which sorts by creation time), strictly before ``before``;
        ``status``: one status, or any of several."""
    def unfinished(self, *, updated_before: datetime, limit: int) -> Sequence[Order]:
        """Orders whose saga is not ``done``, last touched at or before ``updated_before``,
        the least recently touched first (then by id), at most ``limit``."""
    def purge_failed(self, *, failed_before: datetime, limit: int) -> int:
        """Delete up to ``limit`` orders that failed (status ``failed``, saga ``done``) and
        were last touched before ``failed_before``, with their lines, their payment and the
        idempotency records that name them; how many orders."""


@attrs.frozen
class SummaryRow:
    """Orders of one status (and failure reason) and currency: how many, and the amount of
    their payments in minor units (0 for an order that failed before it had one)."""

    status: OrderStatus
    failure_reason: str | None
    currency: str
    count: int
    amount: int


@runtime_checkable
class OrderReports(Protocol):
    """What an order repository may offer besides `OrderRepository`, for the admin's
    reports (`OrderService.summary`, `OrderService.open_returns`): answered by the store
    with an aggregate and an index, where the port's lists would read every order. A
    store without them still runs a shop; its console says these reports are not
    available."""

    def summary(self, *, since: str) -> Sequence[SummaryRow]:
        """The orders whose id is ``since`` or later (ids sort by creation time:
        `commerce_core.clock.first_id_at`), grouped by status, failure reason and
        currency."""
    def open_returns(self, *, limit: int) -> Sequence[Order]:
        """Orders with a return ``requested`` or ``received`` (waiting for an admin),
        newest first."""


class PaymentRepository(Protocol):
    def get(self, payment_id: str) -> Payment | None:
        """The payment, or None."""
    def by_authorization(self, authorization_id: str) -> Payment | None:
        """The payment the provider knows by this authorization id, if any (how a provider
        event that names no order finds its payment)."""
    def get_many(self, payment_ids: Collection[str]) -> dict[str, Payment]:
        """The payments among these ids that exist, by id (one query for a page of orders)."""
    def add(self, payment: Payment) -> None:
        """Insert; raises `Conflict` if the id is taken."""
    def update(self, payment: Payment) -> Payment:
        """Optimistic like `update()`."""
    def list(self, *, after: str | None, limit: int) -> Sequence[Payment]:
        """Payments ordered by id, strictly after ``after``, at most ``limit``."""


class IdempotencyRepository(Protocol):
    def get(self, scope: str, key: str) -> IdempotencyRecord | None:
        """The record under (scope, key), with any response kept, or None."""
    def add(self, record: IdempotencyRecord) -> None:
        """Insert; raises `Conflict` if (scope, key) exists."""
    def save_response(self, scope: str, key: str, status: int, body: str) -> None:
        """Keep the response given for the command under (scope, key); the first one wins."""
    def discard(self, scope: str, key: str, *, created_at: datetime) -> bool:
        """Delete the record under (scope, key) if it is still the one created at
        ``created_at`` and has no response kept: an attempt given up (a checkout to try
        again, a request that never finished). False if it changed or is gone."""
    def purge_requests(self, *, created_before: datetime, limit: int) -> int:
        """Delete up to ``limit`` records of requests that made no order (``order_id`` is
        ``None``: a driving adapter's keys for refunds, shipments, adjustments) created
        strictly before ``created_before``, the oldest first; how many."""


class NotificationRepository(Protocol):
    """Provider events already applied, by (provider, event id): each is applied once."""

    def add(self, provider: str, event_id: str, *, kind: str, reference: str | None,
            at: datetime) -> None:
        """Record it; raises `Conflict` if it was recorded before."""
    def seen(self, provider: str, event_id: str) -> bool:
        """Whether that (provider, event id) was recorded."""


class RedemptionRepository(Protocol):
    """The uses of vouchers, kept with the orders: a use is taken in the transaction that
    creates its order and given back in the one that fails or cancels it, so a voucher's
    usage limit holds however many checkouts race for its last use."""

    def redeem(self, code: str, *, order_id: str, customer_id: str, usage_limit: int | None,
               once_per_customer: bool, at: datetime) -> None:
        """Take a use of ``code`` for the order. Raises `VoucherNotApplicable`: ``used-up``
        when ``usage_limit`` orders hold a use already, ``already-used`` when
        ``once_per_customer`` and an order of this customer holds one. Concurrent redemptions
        of one code are serialised (a lock on the code's counter), so neither limit is ever
        exceeded."""
    def release(self, order_id: str) -> bool:
        """Give back the use the order holds; false if it holds none (already given back)."""
    def used(self, code: str) -> int:
        """How many orders hold a use of ``code``."""
    def used_by(self, code: str, customer_id: str) -> bool:
        """Whether an order of this customer holds a use of ``code``."""


class OrderUnitOfWork(UnitOfWork, Protocol):
    """One transaction on the order store, with its repositories."""

    @property
    def orders(self) -> OrderRepository: ...
    @property
    def payments(self) -> PaymentRepository: ...
    @property
    def idempotency(self) -> IdempotencyRepository: ...
    @property
    def outbox(self) -> OutboxRepository: ...
    @property
    def notifications(self) -> NotificationRepository: ...
    @property
    def redemptions(self) -> RedemptionRepository: ...


class OrderStore(Protocol):
    """The order database."""

    def unit_of_work(self) -> OrderUnitOfWork: ...
    def close(self) -> None: ...

"""The order store on SQLAlchemy Core: orders, their payments and idempotency keys."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import attrs
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from commerce_core.errors import VoucherNotApplicable
from commerce_core.money import Money
from commerce_core.orders import (
    Address,
    Adjustment,
    AdjustmentKind,
    IdempotencyRecord,
    Order,
    OrderLine,
    OrderStatus,
    Return,
    ReturnLine,
    ReturnStatus,
    SagaStep,
    Shipment,
    ShipmentLine,
    StatusChange,
    SummaryRow,
    Tax,
)
from commerce_core.payments import Payment, PaymentEvent, PaymentStatus, PendingRefund
from commerce_core_sqlalchemy._base import (
    Key,
    LongText,
    UnitOfWork,
    UTCDateTime,
    dumps,
    insert_missing,
    inserting,
    loads,
    store_from_url,
)
from commerce_core_sqlalchemy._outbox import SqlAlchemyOutbox, outbox_tables
from commerce_core_sqlalchemy._prepared import prepared
from commerce_core_sqlalchemy.migrations import ensure_schema

if TYPE_CHECKING:
    from commerce_core_sqlalchemy.webhooks import SqlAlchemyWebhookStore

__all__ = ["SqlAlchemyOrderStore", "metadata"]

metadata = sa.MetaData()

orders = sa.Table(
    "orders", metadata,
    sa.Column("id", Key(64), primary_key=True),
    sa.Column("customer_id", Key(255), nullable=False),
    # VARCHAR(24) for "partially_shipped" (0.2; 16 before); SQLite holds text to no length,
    # and its tables of 0.1 keep their 16 (o0007 has nothing to change there)
    sa.Column("status", sa.String(24).with_variant(sa.String(16), "sqlite"), nullable=False),
    sa.Column("saga_step", sa.String(16), nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("shipping_address", sa.Text, nullable=False),
    sa.Column("payment_token", sa.String(255), nullable=False),
    sa.Column("payment_id", Key(64), nullable=True),
    sa.Column("failure_reason", sa.String(64), nullable=True),
    sa.Column("failure_detail", sa.Text, nullable=True),
    sa.Column("shipment_carrier", sa.String(200), nullable=True),
    sa.Column("shipment_tracking_number", sa.String(200), nullable=True),
    sa.Column("shipped_at", UTCDateTime, nullable=True),
    sa.Column("history", LongText, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    # pricing beyond the lines (0.2): JSON lists, empty for an order of its lines alone
    sa.Column("adjustments", LongText, nullable=False, server_default="[]"),
    sa.Column("taxes", LongText, nullable=False, server_default="[]"),
    sa.Column("voucher_code", Key(64), nullable=True),
    sa.Column("email", sa.String(254), nullable=True),
    sa.Column("order_metadata", LongText, nullable=False, server_default="{}"),
    # shipping in parts (0.2): the parcels, and each line's [shipped, cancelled] units, as
    # JSON on the order's row, so that a shipment stays one write ("[]": none yet; for rows
    # of 0.1, the shipment_* columns and the status say it)
    sa.Column("shipments", LongText, nullable=False, server_default="[]"),
    sa.Column("line_progress", LongText, nullable=False, server_default="[]"),
    # returns (0.2): JSON on the order's row too, so that a return's step and the order's
    # saga step are one write, guarded by the order's version
    sa.Column("returns", LongText, nullable=False, server_default="[]"),
    # the admin's reports (0.3): how many of its returns wait for an admin (requested or
    # received), so that the console finds them by an index instead of reading every row
    sa.Column("open_returns", sa.Integer, nullable=False, server_default="0"),
    sa.Index("ix_orders_customer_id_id", "customer_id", "id"),
    sa.Index("ix_orders_open_returns_id", "open_returns", "id"),
    sa.Index("ix_orders_status_id", "status", "id"),
    sa.Index("ix_orders_saga_step_updated_at", "saga_step", "updated_at"),
)

order_lines = sa.Table(
    "order_lines", metadata,
    sa.Column("order_id", Key(64), sa.ForeignKey("orders.id"), primary_key=True),
    sa.Column("position", sa.Integer, primary_key=True),
    sa.Column("sku", Key(64), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("quantity", sa.Integer, nullable=False),
    sa.Column("unit_amount", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
)

payments = sa.Table(
    "payments", metadata,
    sa.Column("id", Key(64), primary_key=True),
    sa.Column("order_id", Key(64), nullable=False, unique=True),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("status", sa.String(24), nullable=False),
    sa.Column("authorization_id", Key(255), nullable=True),
    sa.Column("authorized", sa.BigInteger, nullable=False),
    sa.Column("captured", sa.BigInteger, nullable=False),
    sa.Column("refunded", sa.BigInteger, nullable=False),
    sa.Column("refund_count", sa.Integer, nullable=False),
    sa.Column("pending_refund", sa.Text, nullable=True),
    sa.Column("events", LongText, nullable=False),
    sa.Column("capture_before", UTCDateTime, nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.CheckConstraint("refunded <= captured AND captured <= authorized",
                       name="ck_payments_amounts"),
    sa.Index("ix_payments_authorization_id", "authorization_id"),
)

idempotency_keys = sa.Table(
    "idempotency_keys", metadata,
    sa.Column("scope", Key(255), primary_key=True),
    sa.Column("key", Key(255), primary_key=True),
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("order_id", Key(64), nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("response_status", sa.Integer, nullable=True),
    sa.Column("response_body", LongText, nullable=True),
)

payment_notifications = sa.Table(
    "payment_notifications", metadata,
    sa.Column("provider", Key(50), primary_key=True),
    sa.Column("event_id", Key(255), primary_key=True),
    sa.Column("kind", sa.String(24), nullable=False),
    sa.Column("reference", Key(255), nullable=True),
    sa.Column("received_at", UTCDateTime, nullable=False),
)

#: How many orders hold a use of each voucher: the row a redemption locks, so that
#: redemptions of one code are serialised and its usage limit holds.
voucher_usage = sa.Table(
    "voucher_usage", metadata,
    sa.Column("code", Key(64), primary_key=True),
    sa.Column("used", sa.Integer, nullable=False),
    sa.CheckConstraint("used >= 0", name="ck_voucher_usage_used"),
)

#: The use each order holds (one voucher per order).
voucher_redemptions = sa.Table(
    "voucher_redemptions", metadata,
    sa.Column("order_id", Key(64), primary_key=True),
    sa.Column("code", Key(64), nullable=False),
    sa.Column("customer_id", Key(255), nullable=False),
    sa.Column("redeemed_at", UTCDateTime, nullable=False),
    sa.Index("ix_voucher_redemptions_code_customer_id", "code", "customer_id"),
)

# The standard pricing's rules (`commerce_core_sqlalchemy.pricing`), kept with the orders.

shipping_options = sa.Table(
    "shipping_options", metadata,
    sa.Column("code", Key(64), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    # a JSON list of country codes; NULL: everywhere
    sa.Column("countries", sa.Text, nullable=True),
    sa.Column("active", sa.Boolean, nullable=False),
)

tax_rates = sa.Table(
    "tax_rates", metadata,
    sa.Column("country", sa.String(2), primary_key=True),
    sa.Column("rate_bp", sa.Integer, nullable=False),
)

vouchers = sa.Table(
    "vouchers", metadata,
    sa.Column("code", Key(64), primary_key=True),
    sa.Column("name", sa.String(200), nullable=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("percent_bp", sa.Integer, nullable=True),
    sa.Column("amount", sa.BigInteger, nullable=True),
    sa.Column("currency", sa.String(3), nullable=True),
    sa.Column("min_subtotal", sa.BigInteger, nullable=True),
    sa.Column("min_subtotal_currency", sa.String(3), nullable=True),
    sa.Column("usage_limit", sa.Integer, nullable=True),
    sa.Column("once_per_customer", sa.Boolean, nullable=False),
    sa.Column("active", sa.Boolean, nullable=False),
)

# Outbound webhooks (`commerce_core_sqlalchemy.webhooks`), kept with the orders.

webhook_endpoints = sa.Table(
    "webhook_endpoints", metadata,
    sa.Column("id", Key(64), primary_key=True),
    sa.Column("url", sa.String(2048), nullable=False),
    sa.Column("secret", sa.String(255), nullable=False),
    sa.Column("events", sa.Text, nullable=False),  # a JSON list of types and patterns
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

#: One row per endpoint and event: the endpoint's queue (by ``position``) and its log.
webhook_deliveries = sa.Table(
    "webhook_deliveries", metadata,
    sa.Column("position", sa.BigInteger().with_variant(sa.Integer, "sqlite"),
              primary_key=True, autoincrement=True),
    sa.Column("id", Key(64), nullable=False, unique=True),
    sa.Column("endpoint_id", Key(64), nullable=False),
    sa.Column("event_id", Key(64), nullable=False),
    sa.Column("event_type", sa.String(100), nullable=False),
    sa.Column("aggregate", Key(255), nullable=False),
    sa.Column("body", LongText, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("next_attempt_at", UTCDateTime, nullable=False),
    sa.Column("last_attempt_at", UTCDateTime, nullable=True),
    sa.Column("response_status", sa.Integer, nullable=True),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("delivered_at", UTCDateTime, nullable=True),
    sa.Column("lease_owner", Key(200), nullable=True),
    sa.Column("lease_until", UTCDateTime, nullable=True),
    sa.Column("trace", sa.Text, nullable=True),  # the event's W3C headers, as JSON
    sa.UniqueConstraint("endpoint_id", "event_id", name="uq_webhook_deliveries_endpoint_event"),
    sa.Index("ix_webhook_deliveries_queue", "endpoint_id", "aggregate", "status", "position"),
    sa.Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
    sa.Index("ix_webhook_deliveries_log", "endpoint_id", "position"),
)

outbox = outbox_tables(metadata)


# -- mapping to and from rows ----------------------------------------------------------------

def _order_values(order: Order) -> dict[str, Any]:
    address = order.shipping_address
    shipment = order.shipment
    return {
        "id": order.id, "customer_id": order.customer_id, "status": order.status.value,
        "saga_step": order.saga_step.value, "currency": order.currency,
        "shipping_address": dumps({
            "name": address.name, "line1": address.line1, "line2": address.line2,
            "city": address.city, "postal_code": address.postal_code,
            "country": address.country,
        }),
        "payment_token": order.payment_token, "payment_id": order.payment_id,
        "failure_reason": order.failure_reason, "failure_detail": order.failure_detail,
        "shipment_carrier": shipment.carrier if shipment else None,
        "shipment_tracking_number": shipment.tracking_number if shipment else None,
        "shipped_at": shipment.shipped_at if shipment else None,
        "history": dumps([[h.status.value, h.at.isoformat()] for h in order.history]),
        "created_at": order.created_at, "updated_at": order.updated_at,
        "version": order.version,
        "adjustments": dumps([[a.kind.value, a.code, a.label, a.amount.amount]
                              for a in order.adjustments]),
        "taxes": dumps([[t.country, t.rate_bp, t.inclusive, t.amount.amount]
                        for t in order.taxes]),
        "voucher_code": order.voucher_code, "email": order.email,
        "order_metadata": dumps(order.metadata),
        "shipments": dumps([
            {"id": s.id, "carrier": s.carrier, "tracking_number": s.tracking_number,
             "shipped_at": s.shipped_at.isoformat(), "warehouse": s.warehouse,
             "lines": [[line.sku, line.quantity] for line in s.lines]}
            for s in order.shipments]),
        "line_progress": dumps(
            [[line.shipped_quantity, line.cancelled_quantity] for line in order.lines]
            if any(line.shipped_quantity or line.cancelled_quantity for line in order.lines)
            else []),
        "returns": dumps([_return_values(r) for r in order.returns]),
        "open_returns": open_returns(order),
    }


def open_returns(order: Order) -> int:
    """How many of the order's returns wait for an admin (the ``open_returns`` column)."""
    return sum(1 for r in order.returns
               if r.status in (ReturnStatus.REQUESTED, ReturnStatus.RECEIVED))


def _return_values(found: Return) -> dict[str, Any]:
    return {
        "id": found.id, "lines": [[item.sku, item.quantity] for item in found.lines],
        "reason": found.reason, "status": found.status.value,
        "requested_at": found.requested_at.isoformat(),
        "updated_at": found.updated_at.isoformat(),
        "warehouse": found.warehouse, "restock": found.restock,
        "received_at": None if found.received_at is None else found.received_at.isoformat(),
        "refund": None if found.refund is None else found.refund.amount,
        "include_shipping": found.include_shipping,
        "shipping_refund": (None if found.shipping_refund is None
                            else found.shipping_refund.amount),
        "rejection_reason": found.rejection_reason,
    }


def _returns(row: Any) -> tuple[Return, ...]:
    def money(amount: int | None) -> Money | None:
        return None if amount is None else Money(amount, row.currency)
    return tuple(Return(
        id=r["id"], order_id=row.id,
        lines=tuple(ReturnLine(sku, units) for sku, units in r["lines"]),
        reason=r["reason"], status=ReturnStatus(r["status"]),
        requested_at=datetime.fromisoformat(r["requested_at"]),
        updated_at=datetime.fromisoformat(r["updated_at"]),
        warehouse=r["warehouse"], restock=r["restock"],
        received_at=(None if r["received_at"] is None
                     else datetime.fromisoformat(r["received_at"])),
        refund=money(r["refund"]), include_shipping=r["include_shipping"],
        shipping_refund=money(r["shipping_refund"]), rejection_reason=r["rejection_reason"],
    ) for r in loads(row.returns))


#: Rows of 0.1 say how far their lines got by their status alone.
_SHIPPED_WHOLE = frozenset({OrderStatus.SHIPPED, OrderStatus.DELIVERED, OrderStatus.REFUNDED})


def _progressed(row: Any, status: OrderStatus,
                lines: tuple[OrderLine, ...]) -> tuple[OrderLine, ...]:
    progress = loads(row.line_progress)
    if progress:
        return tuple(attrs.evolve(line, shipped_quantity=shipped, cancelled_quantity=cancelled)
                     for line, (shipped, cancelled) in zip(lines, progress, strict=True))
    if status in _SHIPPED_WHOLE and row.shipment_carrier is not None:
        return tuple(attrs.evolve(line, shipped_quantity=line.quantity) for line in lines)
    if status is OrderStatus.CANCELLED:
        return tuple(attrs.evolve(line, cancelled_quantity=line.quantity) for line in lines)
    return lines


def _shipments(row: Any) -> tuple[Shipment, ...]:
    found = loads(row.shipments)
    if found:
        return tuple(Shipment(
            s["carrier"], s["tracking_number"], datetime.fromisoformat(s["shipped_at"]),
            id=s["id"], lines=tuple(ShipmentLine(sku, units) for sku, units in s["lines"]),
            warehouse=s["warehouse"]) for s in found)
    if row.shipment_carrier is not None:  # a row of 0.1
        return (Shipment(row.shipment_carrier, row.shipment_tracking_number, row.shipped_at),)
    return ()


def _order(row: Any, lines: tuple[OrderLine, ...]) -> Order:
    currency = row.currency
    status = OrderStatus(row.status)
    return Order(
        id=row.id, customer_id=row.customer_id, lines=_progressed(row, status, lines),
        currency=row.currency,
        shipping_address=Address(**loads(row.shipping_address)),
        payment_token=row.payment_token, status=status,
        saga_step=SagaStep(row.saga_step),
        history=tuple(StatusChange(OrderStatus(s), datetime.fromisoformat(at))
                      for s, at in loads(row.history)),
        created_at=row.created_at, updated_at=row.updated_at, payment_id=row.payment_id,
        failure_reason=row.failure_reason, failure_detail=row.failure_detail,
        shipments=_shipments(row), version=row.version,
        adjustments=tuple(Adjustment(AdjustmentKind(kind), code, label, Money(amount, currency))
                          for kind, code, label, amount in loads(row.adjustments)),
        taxes=tuple(Tax(country, rate, inclusive, Money(amount, currency))
                    for country, rate, inclusive, amount in loads(row.taxes)),
        voucher_code=row.voucher_code, email=row.email, metadata=loads(row.order_metadata),
        returns=_returns(row),
    )


def _money_dict(money: Money | None) -> dict[str, Any] | None:
    return None if money is None else {"amount": money.amount, "currency": money.currency}


def _money(data: dict[str, Any] | None) -> Money | None:
    return None if data is None else Money(data["amount"], data["currency"])


def _payment_values(payment: Payment) -> dict[str, Any]:
    pending = payment.pending_refund
    return {
        "id": payment.id, "order_id": payment.order_id, "currency": payment.amount.currency,
        "amount": payment.amount.amount, "status": payment.status.value,
        "authorization_id": payment.authorization_id,
        "authorized": payment.authorized.amount, "captured": payment.captured.amount,
        "refunded": payment.refunded.amount, "refund_count": payment.refund_count,
        "pending_refund": None if pending is None else dumps({
            "amount": pending.amount.amount, "key": pending.idempotency_key,
            "reason": pending.reason, "request_key": pending.request_key,
        }),
        "events": dumps([
            {"kind": e.kind, "at": e.at.isoformat(), "amount": _money_dict(e.amount),
             "reference": e.reference, **({"key": e.key} if e.key is not None else {})}
            for e in payment.events
        ]),
        "capture_before": payment.capture_before,
        "created_at": payment.created_at, "updated_at": payment.updated_at,
        "version": payment.version,
    }


def _payment(row: Any) -> Payment:
    currency = row.currency
    pending = None
    if row.pending_refund is not None:
        data = loads(row.pending_refund)
        pending = PendingRefund(Money(data["amount"], currency), data["key"], data["reason"],
                                data.get("request_key"))
    return Payment(
        id=row.id, order_id=row.order_id, amount=Money(row.amount, currency),
        status=PaymentStatus(row.status), created_at=row.created_at,
        updated_at=row.updated_at, authorization_id=row.authorization_id,
        authorized=Money(row.authorized, currency), captured=Money(row.captured, currency),
        refunded=Money(row.refunded, currency), refund_count=row.refund_count,
        pending_refund=pending,
        events=tuple(
            PaymentEvent(e["kind"], datetime.fromisoformat(e["at"]), _money(e["amount"]),
                         e["reference"], e.get("key")) for e in loads(row.events)
        ),
        capture_before=row.capture_before, version=row.version,
    )


# -- repositories ----------------------------------------------------------------------------

class _Repository:
    def __init__(self, uow: UnitOfWork) -> None:
        self.uow = uow


_GET_ORDER = prepared(
    sa.select(orders, *(c.label(f"line_{c.name}") for c in order_lines.c
                        if c.name not in ("order_id", "position")))
    .outerjoin(order_lines, order_lines.c.order_id == orders.c.id)
    .where(orders.c.id == sa.bindparam("id"))
    .order_by(order_lines.c.position)
)
_GET_PAYMENT = prepared(sa.select(payments).where(payments.c.id == sa.bindparam("id")))
_GET_PAYMENTS = prepared(sa.select(payments).where(
    payments.c.id.in_(sa.bindparam("ids", expanding=True))))
_ORDERS_LINES = prepared(
    sa.select(order_lines).where(order_lines.c.order_id.in_(sa.bindparam("ids", expanding=True)))
    .order_by(order_lines.c.order_id, order_lines.c.position))
_GET_KEY = prepared(sa.select(idempotency_keys).where(
    idempotency_keys.c.scope == sa.bindparam("k_scope"),
    idempotency_keys.c.key == sa.bindparam("k_key")))
_SAVE_RESPONSE = prepared(sa.update(idempotency_keys).where(
    idempotency_keys.c.scope == sa.bindparam("k_scope"),
    idempotency_keys.c.key == sa.bindparam("k_key"),
    idempotency_keys.c.response_status.is_(None)))


_RUNNING_STEPS = [step.value for step in SagaStep if step is not SagaStep.DONE]


class _Orders(_Repository):
    def _load(self, rows: Sequence[Any]) -> list[Order]:
        if not rows:
            return []
        ids = [row.id for row in rows]
        lines: dict[str, list[OrderLine]] = {i: [] for i in ids}
        for line in self.uow.execute(_ORDERS_LINES, {"ids": ids}):
            lines[line.order_id].append(OrderLine(
                line.sku, line.name, line.quantity, Money(line.unit_amount, line.currency)))
        return [_order(row, tuple(lines[row.id])) for row in rows]

    def get(self, order_id: str) -> Order | None:
        # one round trip: the order joined to its lines
        rows = self.uow.execute(_GET_ORDER, {"id": order_id}).all()
        if not rows:
            return None
        return _order(rows[0], tuple(
            OrderLine(r.line_sku, r.line_name, r.line_quantity,
                      Money(r.line_unit_amount, r.line_currency))
            for r in rows if r.line_sku is not None))

    def add(self, order: Order) -> None:
        self.uow.execute(inserting(orders), _order_values(order))
        self.uow.execute(inserting(order_lines), [
            {"order_id": order.id, "position": i, "sku": line.sku, "name": line.name,
             "quantity": line.quantity, "unit_amount": line.unit_price.amount,
             "currency": line.unit_price.currency}
            for i, line in enumerate(order.lines)
        ])

    def update(self, order: Order) -> Order:
        values = _order_values(order)
        for fixed in ("id", "customer_id", "currency", "payment_token", "created_at", "version"):
            del values[fixed]
        return self.uow.update_versioned(orders, order, key={"id": order.id}, values=values,
                                         kind="order")

    def list(
        self, *, customer_id: str | None, status: OrderStatus | Collection[OrderStatus] | None,
        before: str | None, limit: int,
    ) -> Sequence[Order]:
        query = sa.select(orders).order_by(orders.c.id.desc()).limit(limit)
        if customer_id is not None:
            query = query.where(orders.c.customer_id == customer_id)
        if isinstance(status, OrderStatus):
            query = query.where(orders.c.status == status.value)
        elif status is not None:
            query = query.where(orders.c.status.in_([s.value for s in status]))
        if before is not None:
            query = query.where(orders.c.id < before)
        return self._load(self.uow.execute(query).all())

    def purge_failed(self, *, failed_before: datetime, limit: int) -> int:
        found = self.uow.execute(
            sa.select(orders.c.id, orders.c.payment_id)
            .where(orders.c.status == OrderStatus.FAILED.value,
                   orders.c.saga_step == SagaStep.DONE.value,
                   orders.c.updated_at < failed_before)
            .order_by(orders.c.id).limit(limit)).all()
        if not found:
            return 0
        ids = [row.id for row in found]
        self.uow.execute(sa.delete(idempotency_keys).where(idempotency_keys.c.order_id.in_(ids)))
        self.uow.execute(sa.delete(voucher_redemptions)
                         .where(voucher_redemptions.c.order_id.in_(ids)))
        self.uow.execute(sa.delete(order_lines).where(order_lines.c.order_id.in_(ids)))
        self.uow.execute(sa.delete(payments).where(payments.c.order_id.in_(ids)))
        self.uow.execute(sa.delete(orders).where(orders.c.id.in_(ids)))
        return len(ids)

    def summary(self, *, since: str) -> Sequence[SummaryRow]:
        # the ids of orders sort by creation time: the range is on the primary key
        query = (sa.select(orders.c.status, orders.c.failure_reason, orders.c.currency,
                           sa.func.count().label("orders"),
                           sa.func.coalesce(sa.func.sum(payments.c.amount), 0).label("amount"))
                 .select_from(orders.outerjoin(payments, payments.c.order_id == orders.c.id))
                 .where(orders.c.id >= since)
                 .group_by(orders.c.status, orders.c.failure_reason, orders.c.currency))
        return [SummaryRow(OrderStatus(row.status), row.failure_reason, row.currency,
                           int(row.orders), int(row.amount))
                for row in self.uow.execute(query)]

    def open_returns(self, *, limit: int) -> Sequence[Order]:
        query = (sa.select(orders).where(orders.c.open_returns > 0)
                 .order_by(orders.c.id.desc()).limit(limit))
        return self._load(self.uow.execute(query).all())

    def unfinished(self, *, updated_before: datetime, limit: int) -> Sequence[Order]:
        # the steps that are not done, named (``!= 'done'`` cannot use the index on
        # (saga_step, updated_at): among a million finished orders that is a full scan, for
        # every recovery sweep of every worker and every dashboard)
        query = (sa.select(orders)
                 .where(orders.c.saga_step.in_(_RUNNING_STEPS),
                        orders.c.updated_at <= updated_before)
                 .order_by(orders.c.updated_at, orders.c.id).limit(limit))
        return self._load(self.uow.execute(query).all())


class _Payments(_Repository):
    def get(self, payment_id: str) -> Payment | None:
        row = self.uow.execute(_GET_PAYMENT, {"id": payment_id}).first()
        return None if row is None else _payment(row)

    def get_many(self, payment_ids: Collection[str]) -> dict[str, Payment]:
        rows = self.uow.execute(_GET_PAYMENTS, {"ids": list(payment_ids)})
        return {row.id: _payment(row) for row in rows}

    def by_authorization(self, authorization_id: str) -> Payment | None:
        row = self.uow.execute(sa.select(payments).where(
            payments.c.authorization_id == authorization_id)).first()
        return None if row is None else _payment(row)

    def add(self, payment: Payment) -> None:
        self.uow.execute(inserting(payments), _payment_values(payment))

    def update(self, payment: Payment) -> Payment:
        values = _payment_values(payment)
        for fixed in ("id", "order_id", "currency", "amount", "created_at", "version"):
            del values[fixed]
        return self.uow.update_versioned(payments, payment, key={"id": payment.id},
                                         values=values, kind="payment")

    def list(self, *, after: str | None, limit: int) -> Sequence[Payment]:
        query = sa.select(payments).order_by(payments.c.id).limit(limit)
        if after is not None:
            query = query.where(payments.c.id > after)
        return [_payment(row) for row in self.uow.execute(query)]


class _Idempotency(_Repository):
    def get(self, scope: str, key: str) -> IdempotencyRecord | None:
        row = self.uow.execute(_GET_KEY, {"k_scope": scope, "k_key": key}).first()
        if row is None:
            return None
        return IdempotencyRecord(row.scope, row.key, row.fingerprint, row.order_id,
                                 row.created_at, row.response_status, row.response_body)

    def add(self, record: IdempotencyRecord) -> None:
        self.uow.execute(inserting(idempotency_keys), {
            "scope": record.scope, "key": record.key, "fingerprint": record.fingerprint,
            "order_id": record.order_id, "created_at": record.created_at,
            "response_status": record.response_status, "response_body": record.response_body,
        })

    def save_response(self, scope: str, key: str, status: int, body: str) -> None:
        self.uow.execute(_SAVE_RESPONSE, {"response_status": status, "response_body": body,
                                          "k_scope": scope, "k_key": key})

    def purge_requests(self, *, created_before: datetime, limit: int) -> int:
        old = self.uow.execute(
            sa.select(idempotency_keys.c.scope, idempotency_keys.c.key)
            .where(idempotency_keys.c.order_id.is_(None),
                   idempotency_keys.c.created_at < created_before)
            .order_by(idempotency_keys.c.created_at).limit(limit)).all()
        for row in old:  # a few at a time: a composite key has no portable bulk IN
            self.uow.execute(sa.delete(idempotency_keys).where(
                idempotency_keys.c.scope == row.scope, idempotency_keys.c.key == row.key))
        return len(old)

    def discard(self, scope: str, key: str, *, created_at: datetime) -> bool:
        result = self.uow.execute(sa.delete(idempotency_keys).where(
            idempotency_keys.c.scope == scope, idempotency_keys.c.key == key,
            idempotency_keys.c.created_at == created_at,
            idempotency_keys.c.response_status.is_(None)))
        return bool(result.rowcount == 1)


class _Notifications(_Repository):
    def add(self, provider: str, event_id: str, *, kind: str, reference: str | None,
            at: datetime) -> None:
        self.uow.execute(inserting(payment_notifications), {
            "provider": provider, "event_id": event_id, "kind": kind, "reference": reference,
            "received_at": at})

    def seen(self, provider: str, event_id: str) -> bool:
        return self.uow.execute(sa.select(payment_notifications.c.event_id).where(
            payment_notifications.c.provider == provider,
            payment_notifications.c.event_id == event_id)).first() is not None


class _Redemptions(_Repository):
    def redeem(self, code: str, *, order_id: str, customer_id: str, usage_limit: int | None,
               once_per_customer: bool, at: datetime) -> None:
        # the code's counter row, taken with its lock: every other redemption of the code
        # waits here until this transaction ends (made at the code's first use)
        condition = [voucher_usage.c.code == code]
        if usage_limit is not None:
            condition.append(voucher_usage.c.used < usage_limit)
        take = sa.update(voucher_usage).where(*condition).values(used=voucher_usage.c.used + 1)
        if self.uow.execute(take).rowcount != 1:
            if self.uow.execute(sa.select(voucher_usage.c.used).where(
                    voucher_usage.c.code == code)).first() is None:
                self.uow.execute(insert_missing(self.uow.dialect, voucher_usage),
                                 {"code": code, "used": 0})
            if self.uow.execute(take).rowcount != 1:
                raise VoucherNotApplicable(code, "used-up", f"voucher {code!r} is used up")
        if once_per_customer and self.used_by(code, customer_id):
            raise VoucherNotApplicable(code, "already-used",
                                       f"voucher {code!r} was used by this customer already")
        self.uow.execute(inserting(voucher_redemptions), {
            "order_id": order_id, "code": code, "customer_id": customer_id,
            "redeemed_at": at})

    def release(self, order_id: str) -> bool:
        row = self.uow.execute(sa.select(voucher_redemptions.c.code).where(
            voucher_redemptions.c.order_id == order_id)).first()
        if row is None:
            return False
        # the counter first, as redeeming takes it: the two never wait on each other crosswise
        self.uow.execute(sa.update(voucher_usage).where(voucher_usage.c.code == row.code)
                         .values(used=voucher_usage.c.used - 1))
        if self.uow.execute(sa.delete(voucher_redemptions).where(
                voucher_redemptions.c.order_id == order_id)).rowcount != 1:
            # given back meanwhile by another transaction: undo the decrement
            self.uow.execute(sa.update(voucher_usage).where(voucher_usage.c.code == row.code)
                             .values(used=voucher_usage.c.used + 1))
            return False
        return True

    def used(self, code: str) -> int:
        row = self.uow.execute(sa.select(voucher_usage.c.used)
                               .where(voucher_usage.c.code == code)).first()
        return 0 if row is None else int(row.used)

    def used_by(self, code: str, customer_id: str) -> bool:
        return self.uow.execute(sa.select(voucher_redemptions.c.order_id).where(
            voucher_redemptions.c.code == code,
            voucher_redemptions.c.customer_id == customer_id).limit(1)).first() is not None


class _OrderUnitOfWork(UnitOfWork):
    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        self.orders = _Orders(self)
        self.payments = _Payments(self)
        self.idempotency = _Idempotency(self)
        self.outbox = SqlAlchemyOutbox(self, outbox)
        self.notifications = _Notifications(self)
        self.redemptions = _Redemptions(self)


class SqlAlchemyOrderStore:
    """The order database on any SQLAlchemy engine. ``create_schema`` migrates the
    database to the newest revision on open (Alembic; nothing to do when it is there)."""

    def __init__(self, engine: Engine, *, create_schema: bool = True) -> None:
        self.engine = engine
        if create_schema:
            ensure_schema(engine, "orders")

    @classmethod
    def from_url(cls, url: str) -> SqlAlchemyOrderStore:
        """The store of the database at ``url``, migrated; `StoreError` saying what is
        wrong if that database cannot be reached, does not exist or refuses the user."""
        return store_from_url(cls, url)

    def unit_of_work(self) -> _OrderUnitOfWork:
        return _OrderUnitOfWork(self.engine)

    def webhook_store(self) -> SqlAlchemyWebhookStore:
        """Outbound webhooks' endpoints and deliveries, in this database (on its engine)."""
        from commerce_core_sqlalchemy.webhooks import SqlAlchemyWebhookStore  # noqa: PLC0415 (a cycle)

        return SqlAlchemyWebhookStore(self.engine, create_schema=False)

    def close(self) -> None:
        self.engine.dispose()

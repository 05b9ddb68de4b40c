"""Outbound webhooks' endpoints and deliveries in the order database (tables of the order
store's migrations)."""

from __future__ import annotations

import random
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from commerce_core.webhooks import Delivery, DeliveryStatus, WebhookEndpoint
from commerce_core_sqlalchemy._base import (
    UnitOfWork,
    create_store_engine,
    dumps,
    insert_missing,
    loads,
)
from commerce_core_sqlalchemy._outbox import dump_trace, load_trace
from commerce_core_sqlalchemy.migrations import ensure_schema
from commerce_core_sqlalchemy.orders import webhook_deliveries as deliveries
from commerce_core_sqlalchemy.orders import webhook_endpoints as endpoints

__all__ = ["SqlAlchemyWebhookStore"]

_PENDING = DeliveryStatus.PENDING.value


def _endpoint(row: Any) -> WebhookEndpoint:
    return WebhookEndpoint(id=row.id, url=row.url, secret=row.secret,
                           events=tuple(loads(row.events)), active=row.active,
                           created_at=row.created_at, updated_at=row.updated_at)


def _delivery(row: Any) -> Delivery:
    return Delivery(
        id=row.id, endpoint_id=row.endpoint_id, event_id=row.event_id,
        event_type=row.event_type, aggregate=row.aggregate, body=row.body,
        created_at=row.created_at, status=DeliveryStatus(row.status), attempts=row.attempts,
        next_attempt_at=row.next_attempt_at, last_attempt_at=row.last_attempt_at,
        response_status=row.response_status, last_error=row.last_error,
        delivered_at=row.delivered_at, position=row.position, trace=load_trace(row.trace))


_OUTCOME = ("status", "attempts", "next_attempt_at", "last_attempt_at", "response_status",
            "last_error", "delivered_at")


class SqlAlchemyWebhookStore:
    """`WebhookStore` in the order database (any engine the order store takes;
    ``create_schema`` migrates it as the order store does)."""

    def __init__(self, engine: Engine, *, create_schema: bool = True) -> None:
        self.engine = engine
        if create_schema:
            ensure_schema(engine, "orders")

    @classmethod
    def from_url(cls, url: str) -> SqlAlchemyWebhookStore:
        return cls(create_store_engine(url))

    def close(self) -> None:
        self.engine.dispose()

    def put_endpoint(self, endpoint: WebhookEndpoint) -> bool:
        values = {"id": endpoint.id, "url": endpoint.url, "secret": endpoint.secret,
                  "events": dumps(list(endpoint.events)), "active": endpoint.active,
                  "created_at": endpoint.created_at, "updated_at": endpoint.updated_at}
        with UnitOfWork(self.engine) as uow:
            created = uow.execute(insert_missing(uow.dialect, endpoints), values).rowcount == 1
            if not created:
                del values["created_at"]
                uow.execute(sa.update(endpoints).where(endpoints.c.id == endpoint.id)
                            .values(**values))
            uow.commit()
        return created

    def get_endpoint(self, endpoint_id: str) -> WebhookEndpoint | None:
        with UnitOfWork(self.engine) as uow:
            row = uow.execute(sa.select(endpoints).where(endpoints.c.id == endpoint_id)).first()
        return None if row is None else _endpoint(row)

    def endpoints(self) -> Sequence[WebhookEndpoint]:
        with UnitOfWork(self.engine) as uow:
            return [_endpoint(row) for row in uow.execute(
                sa.select(endpoints).order_by(endpoints.c.id))]

    def enqueue(self, items: Sequence[Delivery]) -> int:
        if not items:
            return 0
        new = 0
        with UnitOfWork(self.engine) as uow:
            insert = insert_missing(uow.dialect, deliveries)
            for item in items:  # one by one: the positions follow the events' order
                new += uow.execute(insert, {
                    "id": item.id, "endpoint_id": item.endpoint_id, "event_id": item.event_id,
                    "event_type": item.event_type, "aggregate": item.aggregate,
                    "body": item.body, "status": item.status.value, "attempts": item.attempts,
                    "created_at": item.created_at, "next_attempt_at": item.next_attempt_at,
                    "trace": dump_trace(item.trace),
                }).rowcount
            uow.commit()
        return new

    def claim_due(self, *, now: datetime, owner: str, until: datetime, limit: int,
                  per_endpoint: int, endpoint_id: str | None = None) -> Sequence[Delivery]:
        due = sa.and_(deliveries.c.status == _PENDING, deliveries.c.next_attempt_at <= now)
        earlier = deliveries.alias("earlier")
        first_in_queue = ~sa.exists().where(
            earlier.c.endpoint_id == deliveries.c.endpoint_id,
            earlier.c.aggregate == deliveries.c.aggregate,
            earlier.c.status == _PENDING,
            earlier.c.position < deliveries.c.position)
        heads = (
            sa.select(deliveries)
            .where(due, sa.or_(deliveries.c.lease_until.is_(None),
                               deliveries.c.lease_until <= now), first_in_queue)
            .order_by(deliveries.c.position).limit(per_endpoint))
        with UnitOfWork(self.engine) as uow:
            if endpoint_id is None:  # the active endpoints with something due, each a query
                busy = [row.endpoint_id for row in uow.execute(
                    sa.select(deliveries.c.endpoint_id).distinct()
                    .join(endpoints, endpoints.c.id == deliveries.c.endpoint_id)
                    .where(endpoints.c.active, due))]
                random.shuffle(busy)  # fairness, not secrecy
            else:
                active = uow.execute(sa.select(endpoints.c.active).where(
                    endpoints.c.id == endpoint_id)).scalar()
                busy = [endpoint_id] if active else []
            candidates: list[Delivery] = []
            for busy_id in busy:
                if len(candidates) >= limit:
                    break
                found = [_delivery(row) for row in uow.execute(
                    heads.where(deliveries.c.endpoint_id == busy_id))]
                candidates.extend(found[:limit - len(candidates)])
        if not candidates:
            return []
        claimed: list[Delivery] = []
        with UnitOfWork(self.engine) as uow:  # one conditional update each: others may race
            for candidate in candidates:
                if uow.execute(
                    sa.update(deliveries).where(
                        deliveries.c.id == candidate.id, deliveries.c.status == _PENDING,
                        # as read: not attempted by another process since
                        deliveries.c.attempts == candidate.attempts,
                        deliveries.c.next_attempt_at == candidate.next_attempt_at,
                        sa.or_(deliveries.c.lease_until.is_(None),
                               deliveries.c.lease_until <= now))
                    .values(lease_owner=owner, lease_until=until)).rowcount == 1:
                    claimed.append(candidate)
            uow.commit()
        return claimed

    def finish(self, delivery: Delivery, *, owner: str) -> bool:
        values: dict[str, Any] = {name: getattr(delivery, name) for name in _OUTCOME}
        values["status"] = delivery.status.value
        with UnitOfWork(self.engine) as uow:
            done = uow.execute(
                sa.update(deliveries).where(deliveries.c.id == delivery.id,
                                            deliveries.c.lease_owner == owner)
                .values(lease_owner=None, lease_until=None, **values)).rowcount == 1
            uow.commit()
        return done

    def release(self, delivery_ids: Collection[str], *, owner: str) -> None:
        if not delivery_ids:
            return
        with UnitOfWork(self.engine) as uow:
            uow.execute(sa.update(deliveries).where(deliveries.c.id.in_(list(delivery_ids)),
                                                    deliveries.c.lease_owner == owner)
                        .values(lease_owner=None, lease_until=None))
            uow.commit()

    def deliveries(self, endpoint_id: str, *, before: int | None,
                   limit: int) -> Sequence[Delivery]:
        query = (sa.select(deliveries).where(deliveries.c.endpoint_id == endpoint_id)
                 .order_by(deliveries.c.position.desc()).limit(limit))
        if before is not None:
            query = query.where(deliveries.c.position < before)
        with UnitOfWork(self.engine) as uow:
            return [_delivery(row) for row in uow.execute(query)]

    def get_delivery(self, delivery_id: str) -> Delivery | None:
        with UnitOfWork(self.engine) as uow:
            row = uow.execute(sa.select(deliveries).where(deliveries.c.id == delivery_id)).first()
        return None if row is None else _delivery(row)

    def replay(self, endpoint_id: str, *, delivery_ids: Collection[str] | None,
               now: datetime) -> int:
        query = sa.update(deliveries).where(
            deliveries.c.endpoint_id == endpoint_id,
            deliveries.c.status == DeliveryStatus.FAILED.value)
        if delivery_ids is not None:
            if not delivery_ids:
                return 0
            query = query.where(deliveries.c.id.in_(list(delivery_ids)))
        with UnitOfWork(self.engine) as uow:
            count = uow.execute(query.values(status=_PENDING, attempts=0,
                                             next_attempt_at=now)).rowcount
            uow.commit()
        return int(count)

    def purge(self, *, delivered_before: datetime, limit: int) -> int:
        with UnitOfWork(self.engine) as uow:
            positions = [row.position for row in uow.execute(
                sa.select(deliveries.c.position)
                .where(deliveries.c.status == DeliveryStatus.DELIVERED.value,
                       deliveries.c.delivered_at < delivered_before)
                .order_by(deliveries.c.position).limit(limit))]
            if positions:
                uow.execute(sa.delete(deliveries).where(deliveries.c.position.in_(positions)))
            uow.commit()
        return len(positions)

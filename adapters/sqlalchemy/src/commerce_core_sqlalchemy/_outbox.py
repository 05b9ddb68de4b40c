"""The outbox: the same two tables in both stores, and their repository."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from commerce_core.events import Backlog, DomainEvent
from commerce_core.telemetry import clean_carrier
from commerce_core_sqlalchemy._base import (
    Key,
    LongText,
    UnitOfWork,
    UTCDateTime,
    dumps,
    inserting,
    loads,
)

__all__ = ["OutboxTables", "SqlAlchemyOutbox", "dump_trace", "load_trace", "outbox_tables"]


def dump_trace(trace: Mapping[str, str]) -> str | None:
    """An event's or delivery's trace context for its ``trace`` column (NULL for none)."""
    clean = clean_carrier(trace)
    return dumps(clean) if clean else None


def load_trace(text: str | None) -> dict[str, str]:
    return clean_carrier(loads(text)) if text else {}


class OutboxTables:
    def __init__(self, events: sa.Table, leases: sa.Table) -> None:
        self.events = events
        self.leases = leases


def outbox_tables(metadata: sa.MetaData) -> OutboxTables:
    """``outbox`` (events in the order written, by ``position``) and ``outbox_leases`` (which
    relay may publish) in a store's MetaData."""
    events = sa.Table(
        "outbox", metadata,
        sa.Column("position", sa.BigInteger().with_variant(sa.Integer, "sqlite"),
                  primary_key=True, autoincrement=True),
        sa.Column("id", Key(64), nullable=False, unique=True),
        sa.Column("type", sa.String(100), nullable=False),
        sa.Column("aggregate_type", sa.String(50), nullable=False),
        sa.Column("aggregate_id", Key(200), nullable=False),
        sa.Column("sequence", sa.BigInteger, nullable=False),
        sa.Column("occurred_at", UTCDateTime, nullable=False),
        sa.Column("payload", LongText, nullable=False),
        sa.Column("published_at", UTCDateTime, nullable=True),
        sa.Column("trace", sa.Text, nullable=True),  # W3C headers, as JSON
        sa.Index("ix_outbox_published_at_position", "published_at", "position"),
    )
    leases = sa.Table(
        "outbox_leases", metadata,
        sa.Column("relay", Key(100), primary_key=True),
        sa.Column("owner", Key(200), nullable=False),
        sa.Column("until", UTCDateTime, nullable=False),
    )
    return OutboxTables(events, leases)


def _event(row: Any) -> DomainEvent:
    return DomainEvent(id=row.id, type=row.type, aggregate_type=row.aggregate_type,
                       aggregate_id=row.aggregate_id, sequence=row.sequence,
                       occurred_at=row.occurred_at, payload=loads(row.payload),
                       trace=load_trace(row.trace))


class SqlAlchemyOutbox:
    def __init__(self, uow: UnitOfWork, tables: OutboxTables) -> None:
        self.uow = uow
        self.tables = tables

    def add(self, events: Sequence[DomainEvent]) -> None:
        if events:
            self.uow.execute(inserting(self.tables.events), [
                {"id": e.id, "type": e.type, "aggregate_type": e.aggregate_type,
                 "aggregate_id": e.aggregate_id, "sequence": e.sequence,
                 "occurred_at": e.occurred_at, "payload": dumps(dict(e.payload)),
                 "trace": dump_trace(e.trace)}
                for e in events
            ])

    def pending(self, *, limit: int) -> Sequence[DomainEvent]:
        events = self.tables.events
        rows = self.uow.execute(
            sa.select(events).where(events.c.published_at.is_(None))
            .order_by(events.c.position).limit(limit))
        return [_event(row) for row in rows]

    def backlog(self, *, most: int) -> Backlog:
        """Two reads of the (published_at, position) index: the pending rows counted up to
        ``most``, and the first one's time; no event is read whole."""
        events = self.tables.events
        waiting = events.c.published_at.is_(None)
        bounded = sa.select(events.c.position).where(waiting).limit(most).subquery()
        count = self.uow.execute(sa.select(sa.func.count()).select_from(bounded)).scalar_one()
        oldest = self.uow.execute(sa.select(events.c.occurred_at).where(waiting)
                                  .order_by(events.c.position).limit(1)).scalar()
        return Backlog(int(count), oldest)

    def mark_published(self, event_ids: Collection[str], *, at: datetime) -> None:
        events = self.tables.events
        self.uow.execute(
            sa.update(events).where(events.c.id.in_(list(event_ids)),
                                    events.c.published_at.is_(None)),
            {"published_at": at})

    def claim(self, relay: str, *, owner: str, now: datetime, until: datetime) -> bool:
        leases = self.tables.leases
        taken = self.uow.execute(
            sa.update(leases).where(leases.c.relay == relay,
                                    sa.or_(leases.c.owner == owner, leases.c.until <= now)),
            {"owner": owner, "until": until})
        if taken.rowcount == 1:
            return True
        if self.uow.execute(sa.select(leases.c.relay).where(leases.c.relay == relay)).first():
            return False  # someone else's, and not expired
        # another relay inserting it first makes this raise Conflict, which the relay takes
        # for "not mine" (the transaction is rolled back)
        self.uow.execute(sa.insert(leases), {"relay": relay, "owner": owner, "until": until})
        return True

    def purge(self, *, published_before: datetime, limit: int) -> int:
        events = self.tables.events
        positions = [row.position for row in self.uow.execute(
            sa.select(events.c.position)
            .where(events.c.published_at.is_not(None), events.c.published_at < published_before)
            .order_by(events.c.position).limit(limit))]
        if positions:
            self.uow.execute(sa.delete(events).where(events.c.position.in_(positions)))
        return len(positions)

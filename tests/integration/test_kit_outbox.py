"""`commerce_core.kit.DbApiOutbox`, the outbox written once for any DB-API connection, passes
the outbox conformance suite on the three drivers it is documented for: sqlite3, psycopg
(PostgreSQL) and PyMySQL (MariaDB), each with `outbox_schema`'s tables."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import pytest

from commerce_core.errors import Conflict, StoreError
from commerce_core.kit import DbApiOutbox, from_text, outbox_schema, to_text
from commerce_core.testing.conformance import OutboxConformance
from tests.conftest import BACKENDS, SERVER_URLS, server_urls


def _connect(backend: str, target: str) -> Any:
    if backend == "sqlite":
        return sqlite3.connect(target, timeout=30, isolation_level=None)
    if backend == "postgresql":
        import psycopg  # noqa: PLC0415

        return psycopg.connect(target.replace("postgresql+psycopg", "postgresql"))
    import pymysql  # type: ignore[import-untyped]  # noqa: PLC0415

    database = target.rsplit("/", 1)[1]
    return pymysql.connect(host="127.0.0.1", port=3306, user="root", database=database)


class _UnitOfWork:
    def __init__(self, backend: str, target: str) -> None:
        self.backend = backend
        self.connection = _connect(backend, target)
        self.committed = False

    def __enter__(self) -> Self:
        cursor = self.connection.cursor()
        if self.backend == "sqlite":
            cursor.execute("BEGIN IMMEDIATE")
        self.outbox = DbApiOutbox(cursor,
                                  paramstyle="qmark" if self.backend == "sqlite" else "format")
        return self

    def commit(self) -> None:
        self.connection.commit() if self.backend != "sqlite" else self.connection.execute("COMMIT")
        self.committed = True

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            if not self.committed:
                self.connection.rollback()
        finally:
            self.connection.close()


class DbApiOutboxStore:
    """The smallest store around the kit's outbox: a connection per unit of work."""

    def __init__(self, backend: str, target: str) -> None:
        self.backend, self.target = backend, target
        dialect = {"sqlite": "sqlite", "postgresql": "postgresql", "mariadb": "mysql"}[backend]
        connection = _connect(backend, target)
        try:
            cursor = connection.cursor()
            for statement in outbox_schema(dialect):
                cursor.execute(statement)
            if backend != "sqlite":
                connection.commit()
        finally:
            connection.close()

    def unit_of_work(self) -> _UnitOfWork:
        return _UnitOfWork(self.backend, self.target)


@pytest.fixture(params=[b for b in BACKENDS if b != "memory"])
def outbox_store(request: pytest.FixtureRequest, tmp_path: Path) -> DbApiOutboxStore:
    backend = request.param
    if backend == "sqlite":
        target = str(tmp_path / "outbox.db")
    else:
        assert backend in SERVER_URLS
        target = server_urls(backend, tmp_path)[0]
    DbApiOutboxStore(backend, target)
    # a store creates its tables at each start: the schema runs again on the same database
    return DbApiOutboxStore(backend, target)


class TestDbApiOutbox(OutboxConformance):
    pass


def test_a_taken_event_id_is_a_conflict_and_nothing_is_added(
        outbox_store: DbApiOutboxStore) -> None:
    from commerce_core.events import DomainEvent  # noqa: PLC0415

    at = datetime(2026, 1, 2, tzinfo=UTC)
    event = DomainEvent(id="evt_1", type="order.placed", aggregate_type="order",
                        aggregate_id="ord_1", sequence=1, occurred_at=at, payload={"n": 1})
    other = DomainEvent(id="evt_2", type="order.placed", aggregate_type="order",
                        aggregate_id="ord_1", sequence=2, occurred_at=at)
    with outbox_store.unit_of_work() as uow:
        uow.outbox.add([event])
        uow.commit()
    with outbox_store.unit_of_work() as uow, pytest.raises(Conflict):
        uow.outbox.add([other, event])
    with outbox_store.unit_of_work() as uow:
        assert [e.id for e in uow.outbox.pending(limit=10)] == ["evt_1"]


def test_times_are_stored_as_text_that_sorts_as_they_do() -> None:
    early = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    later = datetime(2026, 1, 2, 3, 4, 5, 1, tzinfo=UTC)
    assert to_text(early) < to_text(later)
    assert from_text(to_text(later)) == later
    with pytest.raises(StoreError):
        to_text(datetime(2026, 1, 2))


@pytest.mark.parametrize("table", ["outbox; DROP TABLE x", "1outbox", "out box", ""])
def test_a_table_name_that_is_not_an_identifier_is_refused(table: str) -> None:
    with pytest.raises(ValueError, match="table name"):
        DbApiOutbox(sqlite3.connect(":memory:").cursor(), events_table=table)
    with pytest.raises(ValueError, match="table name"):
        outbox_schema("sqlite", events_table=table)

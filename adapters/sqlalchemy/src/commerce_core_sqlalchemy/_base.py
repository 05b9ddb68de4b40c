"""Engines, column types and the unit of work shared by both stores."""

from __future__ import annotations

import functools
import json
import re
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

import attrs
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.engine import Connection, CursorResult, Engine

from commerce_core.errors import (
    CommerceError,
    ConcurrencyConflict,
    Conflict,
    FieldError,
    InvalidInput,
    StoreError,
    TransientStoreError,
)
from commerce_core_sqlalchemy._prepared import prepared, run_prepared, uses_listeners

__all__ = [
    "Key",
    "LongText",
    "UTCDateTime",
    "UnitOfWork",
    "create_store_engine",
    "dumps",
    "exact_collation",
    "insert_missing",
    "inserting",
    "loads",
    "opening",
    "shown_url",
    "store_from_url",
]

V = TypeVar("V")


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, on every backend (microseconds kept)."""

    impl = sa.DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect: sa.Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name in ("mysql", "mariadb"):
            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        return dialect.type_descriptor(sa.DateTime())

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


def exact_collation(dialect: sa.Dialect) -> str:
    """The MySQL/MariaDB collation that compares exactly: byte for byte, so case, accents and
    trailing spaces all count (MariaDB's ``_nopad_bin``, MySQL 8's ``_0900_bin``; MySQL 5.7
    has no NO PAD binary collation, and there trailing spaces still compare equal)."""
    if getattr(dialect, "is_mariadb", False) or dialect.name == "mariadb":
        return "utf8mb4_nopad_bin"
    version = getattr(dialect, "server_version_info", None) or (0,)
    return "utf8mb4_0900_bin" if tuple(version) >= (8, 0, 17) else "utf8mb4_bin"


class Key(sa.types.TypeDecorator[str]):
    """An identifier or key (an id, a SKU, an idempotency key, a customer id): compared
    exactly on every backend. PostgreSQL and SQLite compare text exactly already; MySQL and
    MariaDB databases default to collations that ignore case, accents and trailing spaces
    (``utf8mb4_general_ci``), where ``order-7f3A`` and ``order-7f3a`` would be one key, so
    there the column gets `exact_collation`."""

    impl = sa.String
    cache_ok = True

    def __init__(self, length: int) -> None:
        super().__init__(length)
        self.length = length

    def load_dialect_impl(self, dialect: sa.Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name in ("mysql", "mariadb"):
            return dialect.type_descriptor(mysql.VARCHAR(
                self.length, charset="utf8mb4", collation=exact_collation(dialect)))
        return dialect.type_descriptor(sa.String(self.length))


#: Text that may outgrow MySQL's 64 KiB TEXT (stored responses, logs): MEDIUMTEXT there.
LongText = sa.Text().with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb")


@functools.cache
def insert_missing(dialect: sa.Dialect, table: sa.Table) -> sa.Insert:
    """``INSERT`` of one row that does nothing if its primary key is taken, in each backend's
    own words (``ON CONFLICT DO NOTHING``, ``INSERT IGNORE``)."""
    if dialect.name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing().execution_options(
            preserve_rowcount=True)
    if dialect.name == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing().execution_options(
            preserve_rowcount=True)
    if dialect.name in ("mysql", "mariadb"):
        return sa.insert(table).prefix_with("IGNORE").execution_options(preserve_rowcount=True)
    raise NotImplementedError(f"no insert-if-missing for {dialect.name}")


@functools.cache
def inserting(table: sa.Table) -> sa.Insert:
    """``INSERT INTO table``, built once and `prepared` (the columns come from the
    parameters given)."""
    return prepared(sa.insert(table))


def dumps(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def loads(text: str) -> Any:
    return json.loads(text)


def _use_wal(cursor: Any) -> None:
    """Switch the file to WAL (it stays so). Switching needs the file to itself and SQLite
    answers "locked" at once, without waiting, while another connection has it open, as
    when several processes open a new database together: try again for a few seconds."""
    for attempt in range(100):
        try:
            if cursor.execute("PRAGMA journal_mode").fetchone()[0] == "wal":
                return
            cursor.execute("PRAGMA journal_mode=WAL")
        except sqlite3.OperationalError:
            if attempt == 99:
                raise
            time.sleep(0.05)


def _configure_sqlite(engine: Engine) -> None:
    """WAL, and BEGIN IMMEDIATE: a unit of work takes the write lock when it starts, so two
    writers never both read and then fail to upgrade (the SQLite form of a row lock)."""

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA busy_timeout=30000")
        if engine.url.database not in (None, "", ":memory:"):
            _use_wal(cursor)
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Connection) -> None:
        if connection.info.get(_READING):
            return  # a unit of work that has only read so far: sqlite3 runs it in autocommit
        # straight to the driver: this runs once per unit of work, on the hot path
        try:
            connection.connection.dbapi_connection.execute(  # type: ignore[union-attr]
                "BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:  # "database is locked": the busy timeout ran out
            raise sa.exc.OperationalError("BEGIN IMMEDIATE", None, exc) from exc


def create_store_engine(url: str | sa.URL, **options: Any) -> Engine:
    """An engine configured for a store: SQLite gets WAL and immediate transactions (and its
    folder created); server databases get READ COMMITTED, and take the pool's
    size from the URL's ``pool_size``, ``max_overflow``, ``pool_timeout``, ``pool_recycle`` and
    ``pool_pre_ping`` (5 + 5 connections, 30 s and no ping otherwise).

    A missing driver raises `ImportError`; a URL SQLAlchemy cannot read or a dialect
    it does not know, `InvalidInput`.
    """
    try:
        parsed = sa.make_url(url)
        parsed.get_dialect()
    except (sa.exc.ArgumentError, ValueError) as exc:  # NoSuchModuleError is an ArgumentError
        raise InvalidInput("invalid database URL", [FieldError("url", str(exc))]) from exc
    if isinstance(url, str) and re.search(r"[?&]schema=(&|$)", url):
        # SQLAlchemy drops an empty value: ``?schema=`` would name no schema, silently
        raise InvalidInput("invalid database URL", [FieldError("url", "schema is empty")])
    schema = _schema_of(parsed)
    parsed = parsed.difference_update_query(["schema"])
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if not database or database == ":memory:":
            # a database in memory is one per connection: what one thread writes another
            # never sees
            raise InvalidInput("invalid database URL", [FieldError(
                "url", "a SQLite store needs a file: sqlite:///path/to/orders.db")])
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        options.setdefault("connect_args", {}).setdefault("check_same_thread", False)
        engine = sa.create_engine(parsed, **options)
        _configure_sqlite(engine)
        engine.update_execution_options(**{_LAZY_BEGIN: True})
        return engine
    for name, cast in _POOL_OPTIONS.items():  # ours, not the driver's: take them off the URL
        if name in parsed.query:
            value = parsed.query[name]
            try:
                options.setdefault(name, cast(value if isinstance(value, str) else value[-1]))
            except ValueError as exc:
                raise InvalidInput("invalid database URL", [
                    FieldError("url", f"{name} must be "
                               + ("true or false" if cast is _flag else "a number"))]) from exc
            parsed = parsed.difference_update_query([name])
    # 5 + 5 connections per store and process: four workers and their two stores stay
    # within PostgreSQL's default 100 connections; threads beyond that wait for one
    options.setdefault("pool_size", 5)
    options.setdefault("max_overflow", 5)
    # no ping before each use (a round trip per unit of work, about a tenth of a checkout):
    # a connection found dead fails its unit of work as TransientStoreError before anything
    # was written, the service runs it again, and SQLAlchemy renews the whole pool at once
    options.setdefault("pool_pre_ping", False)
    options.setdefault("isolation_level", _LAZY_ISOLATION)
    if schema is not None:
        # every connection starts in the store's schema (a startup option of the
        # connection, not a statement a rollback could undo): its tables, its version
        # table and any statement of a migration go there
        connect_args = options.setdefault("connect_args", {})
        connect_args["options"] = f"{connect_args.get('options', '')} -c search_path={schema}"
    engine = sa.create_engine(parsed, **options)
    if schema is not None:
        with engine.connect() as connection:
            connection.execute(sa.text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
            connection.commit()
    if engine.dialect.name == "postgresql" and options["isolation_level"] == _LAZY_ISOLATION:
        # psycopg switches autocommit on and off without a round trip (PyMySQL needs one)
        engine.update_execution_options(**{_LAZY_BEGIN: True})
    return engine


#: What the drivers say when the database named in the URL does not exist: PostgreSQL's
#: SQLSTATE, MySQL's error number.
_NO_DATABASE = ("3D000", 1049)
#: ... when the credentials are refused.
_REFUSED = ("28P01", "28000", 1045, 1044)


@contextmanager
def opening(url: str) -> Iterator[None]:
    """Translate what can go wrong while a store opens its database (unreachable, missing,
    credentials refused, a file that cannot be made) into `StoreError`, saying which
    database (its URL without the password) and what to do."""
    shown = shown_url(url)
    try:
        yield
    except sa.exc.DBAPIError as exc:
        orig = exc.orig
        sqlstate = getattr(orig, "sqlstate", None)
        args = getattr(orig, "args", ())
        errno = args[0] if args and isinstance(args[0], int) else None
        text = str(orig)
        if (sqlstate in _NO_DATABASE or errno in _NO_DATABASE
                or ("database" in text and "does not exist" in text)):  # psycopg connecting
            problem = "does not exist; create it first (CREATE DATABASE), then start again"
        elif (sqlstate in _REFUSED or errno in _REFUSED
              or "password authentication failed" in text
              or ("role" in text and "does not exist" in text)):
            problem = "refused the user or password in the URL"
        elif url.startswith("sqlite"):
            problem = "could not be opened: is the path a file this process may write?"
        elif isinstance(exc, sa.exc.OperationalError):
            problem = "cannot be reached: is the server running, and is the URL's host right?"
        else:
            problem = "could not be opened"
        detail = str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
        raise StoreError(f"the database {shown} {problem} ({detail})") from exc
    except OSError as exc:  # SQLite: the file or its folder cannot be made
        raise StoreError(f"the database {shown} could not be opened: {exc}") from exc
    except CommerceError:
        raise  # said already (an invalid URL)
    except (sa.exc.SQLAlchemyError, ValueError, TypeError, AttributeError) as exc:
        # a driver that chokes on an option of the URL (``?charset=bogus``)
        raise StoreError(f"the database {shown} could not be opened; check the URL's "
                         f"options ({type(exc).__name__}: {exc})") from exc


def store_from_url(factory: Callable[[Engine], V], url: str) -> V:
    """A store (``factory(engine)``) of the database at ``url``, migrated by the factory;
    `StoreError` saying what is wrong if that database cannot be opened (`opening`), and
    nothing left connected then."""
    with opening(url):
        engine = create_store_engine(url)
        try:
            return factory(engine)
        except BaseException:
            engine.dispose()
            raise


#: Query parameters of a URL that carry secrets (masked in messages).
_SECRET = re.compile(r"pass|secret|token|key|credential", re.IGNORECASE)


def shown_url(url: str) -> str:
    """The URL as a message may show it: no password, neither before the ``@`` nor in its
    query (``?password=``, ``?passwd=``, ...)."""
    try:
        parsed = sa.make_url(url)
    except (sa.exc.ArgumentError, ValueError):
        return url.split("://", 1)[0] + "://…"
    masked = {name: "hidden" for name in parsed.query if _SECRET.search(name)}
    if masked:
        parsed = parsed.update_query_dict(masked)
    return parsed.render_as_string(hide_password=True)


#: A schema name a store may be given (``?schema=`` on a PostgreSQL URL).
_SCHEMA = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def _schema_of(url: sa.URL) -> str | None:
    """The ``schema`` of a store's URL: on PostgreSQL, where the store keeps its tables, so
    that the order and the inventory store can share one database; refused elsewhere."""
    value = url.query.get("schema")
    if value is None:
        return None
    if not isinstance(value, str):  # given twice: which one was meant?
        raise InvalidInput("invalid database URL", [FieldError(
            "url", "schema is given more than once")])
    name = value
    backend = url.get_backend_name()
    if backend != "postgresql":
        advice = ("give each store a database of its own (on MySQL and MariaDB a schema is a "
                  "database)" if backend in ("mysql", "mariadb")
                  else "give each store a file of its own")
        raise InvalidInput("invalid database URL", [FieldError(
            "url", f"schema is for PostgreSQL; on {backend}, {advice}")])
    if not _SCHEMA.fullmatch(name):
        raise InvalidInput("invalid database URL", [FieldError(
            "url", "schema must be 1 to 63 lower-case letters, digits and _, "
                   "not starting with a digit")])
    return name


#: The execution option that lets a `UnitOfWork` read in autocommit until it first writes.
_LAZY_BEGIN = "commerce_lazy_begin"
_LAZY_ISOLATION = "READ COMMITTED"
#: Set in a SQLite connection's ``info`` while its unit of work has only read: no BEGIN then.
_READING = "commerce_reading"


def _flag(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError(text)


#: Connection-pool settings a server URL may carry, e.g. ``...?pool_size=10&max_overflow=20``.
_POOL_OPTIONS: dict[str, Any] = {"pool_size": int, "max_overflow": int, "pool_timeout": float,
                                 "pool_recycle": int, "pool_pre_ping": _flag}


#: PostgreSQL SQLSTATEs of a transaction the server rolled back: serialization failure,
#: deadlock, lock not available.
_PG_ROLLED_BACK = {"40001", "40P01", "55P03"}
#: ... and of a connection that failed or could not be made (too many connections, starting).
_PG_CONNECTION = {"08000", "08001", "08003", "08004", "08006", "53300", "57P03"}
#: MySQL/MariaDB: deadlock and lock wait timeout; server gone away, lost connection, too many
#: connections.
_MYSQL_ROLLED_BACK = {1213, 1205}
_MYSQL_CONNECTION = {2006, 2013, 1040}


def is_transient(exc: sa.exc.DBAPIError, *, committing: bool = False) -> bool:
    """Whether the same transaction may simply run again: the database rolled it back (a
    deadlock, a serialization failure), or the connection failed *before* the commit. A
    connection lost while committing is not: the commit may have happened."""
    orig = exc.orig
    sqlstate = getattr(orig, "sqlstate", None)  # psycopg 3
    args = getattr(orig, "args", ())
    errno = args[0] if args and isinstance(args[0], int) else None  # PyMySQL: (errno, text)
    if sqlstate in _PG_ROLLED_BACK or errno in _MYSQL_ROLLED_BACK:
        return True
    if isinstance(exc, sa.exc.OperationalError) and "database is locked" in str(orig):
        return True  # SQLite: the busy timeout ran out; nothing was written
    lost = (exc.connection_invalidated or sqlstate in _PG_CONNECTION
            or errno in _MYSQL_CONNECTION)
    return lost and not committing


@contextmanager
def _wrapped(*, committing: bool = False, connecting: bool = False) -> Iterator[None]:
    try:
        yield
    except sa.exc.IntegrityError as exc:
        raise Conflict(f"constraint violated: {exc.orig}") from exc
    except sa.exc.TimeoutError as exc:  # the pool had no connection free in time
        raise TransientStoreError(f"database busy, try again: {exc}") from exc
    except sa.exc.DBAPIError as exc:
        if connecting:
            # nothing was done yet when a connection cannot be had (a restart, too many
            # clients): the whole unit of work may simply run again
            raise TransientStoreError(f"cannot connect to the database, try again: "
                                      f"{exc.orig}") from exc
        if is_transient(exc, committing=committing):
            raise TransientStoreError(f"database busy, try again: {exc.orig}") from exc
        if committing:
            raise StoreError(f"the commit's outcome is unknown: {exc.orig}") from exc
        raise StoreError(f"database error: {exc.orig}") from exc


@functools.cache
def _versioned_update(table: sa.Table, key: tuple[str, ...]) -> sa.Update:
    """``UPDATE table WHERE key = :key_* AND version = :expected_version``, built once (the
    SET clause comes from the parameters' names, and SQLAlchemy caches its compiled form)."""
    return prepared(sa.update(table).where(
        *(table.c[name] == sa.bindparam(f"key_{name}") for name in key),
        table.c.version == sa.bindparam("expected_version"),
    ))


def _versioned_params(values: Mapping[str, Any], key: Mapping[str, Any],
                      version: int) -> dict[str, Any]:
    """The parameters of `_versioned_update` for one row at ``version``."""
    return {**values, **{f"key_{name}": value for name, value in key.items()},
            "expected_version": version, "version": version + 1}


_WRITER_LOCKS: weakref.WeakKeyDictionary[Engine, threading.RLock] = weakref.WeakKeyDictionary()
_WRITER_LOCKS_LOCK = threading.Lock()


def _sqlite_writer_lock(engine: Engine) -> threading.RLock:
    with _WRITER_LOCKS_LOCK:
        lock = _WRITER_LOCKS.get(engine)
        if lock is None:
            lock = _WRITER_LOCKS[engine] = threading.RLock()
        return lock


class UnitOfWork:
    """One connection and one transaction; rolled back on exit unless committed.

    The transaction starts at the first statement that writes or locks; plain reads before it
    run in autocommit. On SQLite that is what lets readers read while a writer holds the
    write lock (WAL), and spares a read-only unit of work its ``BEGIN IMMEDIATE``; on
    PostgreSQL at READ COMMITTED (what `create_store_engine` makes) every statement sees what
    was committed when it started, inside a transaction or not, so nothing changes but two
    round trips less (``BEGIN`` and ``ROLLBACK``). A read that must be part of the
    transaction is a locking one (``SELECT ... FOR UPDATE``), and starts it. Other engines
    (MariaDB, where switching autocommit is a round trip itself) start it at once.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._connection: Connection | None = None
        self._lazy = bool(engine.get_execution_options().get(_LAZY_BEGIN))
        self._sqlite = engine.dialect.name == "sqlite"
        self._writing = False
        self._writer_lock: threading.RLock | None = None
        #: prepared statements on the driver's cursor, unless listeners must see them
        #: (decided as the unit of work begins)
        self._fast = False

    def __enter__(self) -> Self:
        self._fast = not uses_listeners(self._engine)
        with _wrapped(connecting=True):
            self._connection = self._engine.connect()
            if not self._lazy:
                self._connection.begin()
                self._writing = True
            elif self._sqlite:
                self._connection.info[_READING] = True
            else:
                self._connection.execution_options(isolation_level="AUTOCOMMIT")
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        connection, self._connection = self._connection, None
        try:
            if connection is not None:
                if self._sqlite and not self._writing and not connection.invalidated:
                    connection.info.pop(_READING, None)
                connection.close()  # rolls back whatever was not committed
        finally:
            if self._writer_lock is not None:
                self._writer_lock.release()
                self._writer_lock = None

    def commit(self) -> None:
        if self._connection is None:
            raise RuntimeError("commit() outside the unit of work's with-block")
        if not self._writing:
            return  # nothing was written: no transaction was ever started
        with _wrapped(committing=True):
            self._connection.commit()

    def _begin_writing(self, connection: Connection) -> None:
        """Leave autocommit for a transaction, before the first statement that writes."""
        if connection.in_transaction():
            connection.commit()  # the reads' autocommit "transaction": nothing to commit
        if self._sqlite:
            del connection.info[_READING]
            # the threads of this process queue here for SQLite's write lock, in order,
            # rather than in SQLite's busy handler, which sleeps up to 100 ms between tries
            self._writer_lock = _sqlite_writer_lock(self._engine)
            self._writer_lock.acquire()
        else:
            connection.execution_options(isolation_level=_LAZY_ISOLATION)
        connection.begin()  # SQLite: BEGIN IMMEDIATE, the write lock
        self._writing = True

    def update_versioned(
        self, table: sa.Table, item: V, *, key: Mapping[str, Any], values: Mapping[str, Any],
        kind: str,
    ) -> V:
        """``UPDATE table SET values, version = version + 1 WHERE key AND version = ?``.

        Returns ``item`` with its next version, or raises `ConcurrencyConflict` when
        the stored version is not the one ``item`` was read with.
        """
        version: int = item.version  # type: ignore[attr-defined]  # every versioned aggregate
        result = self.execute(_versioned_update(table, tuple(key)),
                              _versioned_params(values, key, version))
        if result.rowcount != 1:
            raise ConcurrencyConflict(kind, "/".join(str(v) for v in key.values()))
        return attrs.evolve(item, version=version + 1)  # type: ignore[misc]

    @property
    def dialect(self) -> sa.Dialect:
        return self._engine.dialect

    @property
    def sane_multi_rowcount(self) -> bool:
        """Whether an executemany's rowcount is the sum over its rows (psycopg, sqlite3)."""
        return bool(self._engine.dialect.supports_sane_multi_rowcount)

    def update_versioned_many(
        self, table: sa.Table, items: Sequence[V], *, keys: tuple[str, ...],
        values: tuple[str, ...], kind: str,
    ) -> list[V]:
        """`update_versioned` for several rows in one executemany; `ConcurrencyConflict` if
        fewer rows matched than were given (the transaction is then to be rolled back)."""
        rows = [_versioned_params({name: getattr(item, name) for name in values},
                                  {name: getattr(item, name) for name in keys},
                                  item.version)  # type: ignore[attr-defined]
                for item in items]
        result = self.execute(_versioned_update(table, keys), rows)
        if result.rowcount != len(rows):
            raise ConcurrencyConflict(kind, ", ".join(
                "/".join(str(getattr(item, name)) for name in keys) for item in items))
        return [attrs.evolve(item, version=item.version + 1)  # type: ignore[attr-defined, misc]
                for item in items]

    def execute(
        self, statement: sa.Executable, params: Sequence[Mapping[str, Any]] | Mapping[str, Any]
        | None = None,
    ) -> CursorResult[Any]:
        if self._connection is None:
            raise RuntimeError("the unit of work is not open")
        with _wrapped():
            if not self._writing and not (isinstance(statement, sa.Select)
                                          and statement._for_update_arg is None):
                self._begin_writing(self._connection)
            if self._fast:
                # a prepared statement answers with its rows or its rowcount: what the
                # stores read of a result (`_prepared.Rows`, `_prepared.Done`)
                result = run_prepared(self._connection, statement, params)
                if result is not NotImplemented:
                    return result  # type: ignore[no-any-return]
            return self._connection.execute(statement, params)

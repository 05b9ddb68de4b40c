"""Alembic migrations: one tree per store (``orders``, ``inventory``), each with its own
version table, since the two stores are separate databases (or, on PostgreSQL, two schemas of
one database: ``?schema=`` on the store's URL).

`upgrade` brings a database to the newest revision under a lock, so several processes
starting at once migrate it once; `ensure_schema` does nothing when the database is already
there (one query), which is what every store does when it opens. A database made by
commerce-core 0.1.0 (tables created without Alembic) is adopted: stamped at the first
revision, then upgraded.

From the command line, the usual Alembic commands work on either tree::

    alembic -c adapters/sqlalchemy/alembic.ini -n orders -x url=postgresql+psycopg://... \
        upgrade head
"""

from __future__ import annotations

import functools
import importlib
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from commerce_core.errors import StoreError
from commerce_core_sqlalchemy._base import shown_url

#: Set while this module drives Alembic: its INFO lines (its plugins, "Context impl",
#: each revision run) are dropped then, and one line of our own says what was migrated.
#: The ``alembic`` command, or a host's own use of Alembic, logs as it always does.
_QUIET = threading.local()


class _WhileMigrating(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno > logging.INFO or not getattr(_QUIET, "on", False)


for _name in ("alembic.runtime.migration", "alembic.runtime.plugins"):
    logging.getLogger(_name).addFilter(_WhileMigrating())


@contextmanager
def _quietly() -> Iterator[None]:
    before = getattr(_QUIET, "on", False)
    _QUIET.on = True
    try:
        yield
    finally:
        _QUIET.on = before


with _quietly():  # Alembic logs its plugins as it is imported
    from alembic import command
    from alembic.config import Config
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

__all__ = ["STORES", "Store", "alembic_config", "current", "ensure_schema", "exact_keys", "head",
           "upgrade"]

Store = Literal["orders", "inventory"]

#: Each store: the module holding its ``metadata``, its version table, and a table that
#: exists in every revision (to recognise a database made before migrations existed).
STORES: dict[str, tuple[str, str, str]] = {
    "orders": ("commerce_core_sqlalchemy.orders", "commerce_orders_version", "orders"),
    "inventory": ("commerce_core_sqlalchemy.inventory", "commerce_inventory_version",
                  "products"),
}

#: The revision the first release's tables correspond to.
BASELINE = {"orders": "o0001", "inventory": "i0001"}


def metadata(store: str) -> sa.MetaData:
    module = importlib.import_module(STORES[store][0])
    result: sa.MetaData = module.metadata
    return result


def alembic_config(store: str, connection: Connection | None = None) -> Config:
    """An Alembic `Config` for one store's tree; with ``connection``, migrations run on it."""
    if store not in STORES:
        raise ValueError(f"unknown store {store!r}; one of {sorted(STORES)}")
    config = Config()
    config.set_main_option("script_location", f"commerce_core_sqlalchemy:migrations/{store}")
    config.attributes["store"] = store
    if connection is not None:
        config.attributes["connection"] = connection
    return config


@functools.cache
def head(store: str) -> str:
    """The newest revision of a store's tree."""
    revision = ScriptDirectory.from_config(alembic_config(store)).get_current_head()
    if revision is None:  # pragma: no cover - the trees ship with their revisions
        raise RuntimeError(f"no migrations found for the {store} store")
    return revision


log = logging.getLogger("commerce_core.sqlalchemy")


def _context(connection: Connection, store: str) -> MigrationContext:
    return MigrationContext.configure(connection, opts={"version_table": STORES[store][1]})


def current(engine: Engine, store: str) -> str | None:
    """The revision a database is at (``None``: never migrated)."""
    with _quietly(), engine.connect() as connection:
        return _context(connection, store).get_current_revision()


def ensure_schema(engine: Engine, store: str) -> None:
    """Upgrade the database to the newest revision unless it is there already. A database
    (or schema) that holds the other store's tables is refused before anything is written
    (`StoreError`): both trees have an ``outbox`` table."""
    if current(engine, store) != head(store):
        _alone(engine, store)
        upgrade(engine, store)


def _alone(engine: Engine, store: str) -> None:
    other = "inventory" if store == "orders" else "orders"
    _, version_table, marker = STORES[other]
    with engine.connect() as connection:
        found = set(sa.inspect(connection).get_table_names()) & {version_table, marker}
    if found:
        shown = shown_url(engine.url.render_as_string(hide_password=False))
        raise StoreError(
            f"the database {shown} holds the {other} store's tables ({', '.join(sorted(found))})"
            f": the order and the inventory store each need a database of their own, or, on "
            f"PostgreSQL, a schema of their own (?schema=orders and ?schema=inventory on their "
            f"URLs); nothing was written")


#: Alembic's ``context`` is one module-level object: one migration per process at a time.
_IN_PROCESS = threading.Lock()


@contextmanager
def _migration_lock(connection: Connection, store: str) -> Iterator[None]:
    """Only one process migrates a database at a time; the others wait, then find it done."""
    with _IN_PROCESS, _database_lock(connection, store):
        yield


@contextmanager
def _database_lock(connection: Connection, store: str) -> Iterator[None]:
    name = f"commerce_core_migrate_{store}"
    dialect = connection.dialect.name
    if dialect == "postgresql":
        connection.execute(sa.text("SELECT pg_advisory_lock(hashtext(:name))"), {"name": name})
        connection.commit()
        try:
            yield
        finally:
            connection.execute(sa.text("SELECT pg_advisory_unlock(hashtext(:name))"),
                               {"name": name})
            connection.commit()
    elif dialect in ("mysql", "mariadb"):
        connection.execute(sa.text("SELECT GET_LOCK(:name, 300)"), {"name": name})
        connection.commit()
        try:
            yield
        finally:
            connection.execute(sa.text("SELECT RELEASE_LOCK(:name)"), {"name": name})
            connection.commit()
    else:  # SQLite: each migration runs in one immediate (write-locked) transaction
        yield


def upgrade(engine: Engine, store: str, revision: str = "heads") -> None:
    """Migrate a store's database up to ``revision`` (the newest by default); one INFO line
    on the ``commerce_core.sqlalchemy`` logger says from where to where."""
    with _quietly(), engine.connect() as connection, _migration_lock(connection, store):
        before = _context(connection, store).get_current_revision()
        if before is None:
            existing = sa.inspect(connection).get_table_names()
            connection.commit()
            if STORES[store][2] in existing:  # made by create_all before migrations existed
                command.stamp(alembic_config(store, connection), BASELINE[store])
                connection.commit()
        command.upgrade(alembic_config(store, connection), revision)
        connection.commit()
        after = _context(connection, store).get_current_revision()
    if after != before:
        log.info("the %s database %s migrated from %s to %s", store,
                 shown_url(engine.url.render_as_string(hide_password=False)),
                 before or "nothing", after)


def exact_keys(op: Any, columns: dict[str, list[tuple[str, int, bool]]], *,
               exact: bool = True) -> None:
    """On MySQL and MariaDB, give identifier columns (``{table: [(column, length,
    nullable)]}``) the collation that compares exactly (`exact_collation`), or, with
    ``exact=False`` (a downgrade), the database's default one back. Nothing to do elsewhere:
    PostgreSQL and SQLite compare text exactly already."""
    from commerce_core_sqlalchemy._base import exact_collation  # noqa: PLC0415

    bind = op.get_bind()
    if bind.dialect.name not in ("mysql", "mariadb"):
        return
    collation = exact_collation(bind.dialect) if exact else None
    # MariaDB refuses to change a column a foreign key joins, even with the checks off:
    # the keys between these tables are dropped, and made again once both sides match
    inspector = sa.inspect(bind)
    keys = [(table, key) for table in columns for key in inspector.get_foreign_keys(table)]
    for table, key in keys:
        op.drop_constraint(key["name"], table, type_="foreignkey")
    for table, specs in columns.items():
        for column, length, nullable in specs:
            kind = f"VARCHAR({length}) CHARACTER SET utf8mb4" + (
                f" COLLATE {collation}" if collation else "")
            op.execute(f"ALTER TABLE `{table}` MODIFY `{column}` {kind} "
                       f"{'NULL' if nullable else 'NOT NULL'}")
    for table, key in keys:
        op.create_foreign_key(key["name"], table, key["referred_table"],
                              key["constrained_columns"], key["referred_columns"])


def _render_item(kind: str, obj: Any, autogen_context: Any) -> str | bool:
    """Autogenerate writes our column types as importable names."""
    from commerce_core_sqlalchemy._base import Key, UTCDateTime  # noqa: PLC0415

    if kind == "type" and isinstance(obj, UTCDateTime):
        autogen_context.imports.add("from commerce_core_sqlalchemy._base import UTCDateTime")
        return "UTCDateTime()"
    if kind == "type" and isinstance(obj, Key):
        autogen_context.imports.add("from commerce_core_sqlalchemy._base import Key")
        return f"Key({obj.length})"
    return False


def run_environment(context: Any, store: str) -> None:
    """The body of both trees' ``env.py``: online migrations on the given connection, or on
    an engine made from ``-x url=...`` when run by the ``alembic`` command."""
    config = context.config
    connection = config.attributes.get("connection")
    options: dict[str, Any] = {
        "target_metadata": metadata(store),
        "version_table": STORES[store][1],
        "render_as_batch": True,  # SQLite alters tables by copying them
        "compare_type": True,
        "render_item": _render_item,
    }
    if connection is not None:
        context.configure(connection=connection, **options)
        with context.begin_transaction():
            context.run_migrations()
        return
    url = context.get_x_argument(as_dictionary=True).get("url")
    if not url:
        raise SystemExit("give the database: alembic ... -x url=<SQLAlchemy URL>")
    from commerce_core_sqlalchemy._base import create_store_engine  # noqa: PLC0415

    engine = create_store_engine(url)
    try:
        with engine.connect() as own:
            context.configure(connection=own, **options)
            with context.begin_transaction():
                context.run_migrations()
            own.commit()
    finally:
        engine.dispose()

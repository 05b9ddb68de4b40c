"""Prepared statements: the checkout's statements run on the driver's cursor.

SQLAlchemy's execution path (the statement's cache key, the execution context, the compiled
parameters, the result's metadata, the events) costs more CPU per statement than SQLite
takes to run it. A statement marked with `prepared` (one built once, at import: a module
constant) is compiled once per dialect and set of parameter names by SQLAlchemy itself, with
SQLAlchemy's own bind processors and, for a query, its result processors; each execution is
then one call of the driver's cursor. The SQL, the values bound and the values read are
SQLAlchemy's, only the bookkeeping between them is gone.

What stays SQLAlchemy's: the connection, its pool and its transaction; a driver error goes
through `Connection._handle_dbapi_exception`, so it is wrapped, a lost connection
invalidated (the pool with it) and ``handle_error`` listeners called as for any statement.
An engine with statement listeners (``before_cursor_execute``, ``before_execute``, ...: the
OpenTelemetry instrumentation, a statement counter) runs every statement the usual way, so
that they see each one. A statement the fast path cannot take (a callable or literal-rendered
parameter, a RETURNING, Python-side defaults, an executemany with expanding parameters) runs
the usual way too.
"""

from __future__ import annotations

import collections
import logging
import threading
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection

__all__ = ["prepared", "run_prepared", "uses_listeners"]

E = TypeVar("E", bound=sa.Executable)

#: prepared statements by ``id()``: each is kept here, so an id is never reused
_PREPARED: dict[int, _Prepared] = {}
_LOCK = threading.Lock()
#: the execution listeners that must see every statement
_STATEMENT_EVENTS = ("before_cursor_execute", "after_cursor_execute", "before_execute",
                     "after_execute")


def prepared(statement: E) -> E:
    """Mark ``statement`` (built once, kept for the process's life) for the fast path."""
    with _LOCK:
        if id(statement) not in _PREPARED:
            _PREPARED[id(statement)] = _Prepared(statement)
    return statement


#: the dialect's listeners that replace the driver's execute
_DIALECT_EVENTS = ("do_execute", "do_executemany", "do_execute_no_params")
#: SQLAlchemy's statement log (``echo=True`` logs to it too)
_ENGINE_LOG = logging.getLogger("sqlalchemy.engine.Engine")


def uses_listeners(engine: sa.Engine) -> bool:
    """Whether every statement on ``engine`` must go SQLAlchemy's usual way: listeners that
    must see each one (statement events, the dialect's execute events), its statement log
    on (``echo``, or the ``sqlalchemy.engine`` logger at INFO), or execution options that
    change the SQL (``schema_translate_map``)."""
    dispatch = engine.dispatch
    return (any(getattr(dispatch, name) for name in _STATEMENT_EVENTS)
            or any(getattr(engine.dialect.dispatch, name) for name in _DIALECT_EVENTS)
            or bool(engine.echo) or _ENGINE_LOG.isEnabledFor(logging.INFO)
            or engine.get_execution_options().get("schema_translate_map") is not None)


class _Unprepared(Exception):
    """The statement, with these parameters, is not one the fast path takes."""


class Done:
    """What a prepared INSERT, UPDATE or DELETE answers: the rows it touched."""

    __slots__ = ("rowcount",)

    def __init__(self, rowcount: int) -> None:
        self.rowcount = rowcount


class Rows:
    """What a prepared query answers: its rows, read whole (named tuples, values processed as
    SQLAlchemy processes them), with the part of `Result` the stores use."""

    __slots__ = ("_rows", "rowcount")

    def __init__(self, rows: list[Any], rowcount: int) -> None:
        self._rows = rows
        self.rowcount = rowcount

    def __iter__(self) -> Iterator[Any]:
        return iter(self._rows)

    def all(self) -> list[Any]:
        return self._rows

    def first(self) -> Any:
        return self._rows[0] if self._rows else None

    def scalar(self) -> Any:
        return self._rows[0][0] if self._rows else None


class _Plan:
    """One statement compiled for one dialect and one shape of parameters."""

    __slots__ = ("names", "readers", "rows", "slots", "sql")

    def __init__(self, sql: str, slots: list[tuple[str, int, Any, Callable[[Any], Any] | None]],
                 names: list[str] | None) -> None:
        self.sql = sql
        #: per parameter the driver gets: the given key (or "" for a constant), the index in
        #: an expanded list (-1: none), the constant, the bind processor
        self.slots = slots
        #: the driver's parameter names (a named paramstyle), or None (positional)
        self.names = names
        self.rows: type | None = None  # the row type of a query
        self.readers: list[Callable[[Any], Any] | None] | None = None

    def bind(self, params: Mapping[str, Any]) -> Any:
        values = []
        for key, index, constant, process in self.slots:
            value = constant if not key else (
                params[key] if index < 0 else params[key][index])
            values.append(value if process is None or value is None else process(value))
        if self.names is None:
            return values
        return dict(zip(self.names, values, strict=True))


class _Prepared:
    def __init__(self, statement: sa.Executable) -> None:
        self.statement = statement
        self.query = isinstance(statement, sa.Select)
        #: the names of its expanding parameters (known once compiled)
        self.expanding: tuple[str, ...] | None = None
        #: per dialect: (parameter names, lengths of expanded lists) to plan, or None
        #: (each engine has a dialect of its own: its plans go with it)
        self.plans: weakref.WeakKeyDictionary[sa.Dialect, dict[tuple[Any, ...], _Plan | None]] \
            = weakref.WeakKeyDictionary()

    def plan(self, dialect: sa.Dialect, params: Mapping[str, Any]) -> _Plan | None:
        plans = self.plans.get(dialect)
        if plans is None:
            plans = self.plans.setdefault(dialect, {})
        shape = self._shape(params)
        if shape is not None:
            try:
                return plans[shape]
            except KeyError:
                pass
        try:
            plan: _Plan | None = self._compile(dialect, params)
        except _Unprepared:
            plan = None
        except Exception:  # noqa: BLE001 - SQLAlchemy's own path says what is wrong
            return None
        shape = self._shape(params)
        if shape is not None and len(plans) < 64:  # a few shapes each; never without end
            plans[shape] = plan
        return plan

    def _shape(self, params: Mapping[str, Any]) -> tuple[Any, ...] | None:
        """The parameters' names, and the lengths of the lists of expanding ones (None: not
        known yet, or not given as lists)."""
        if self.expanding is None:
            return None
        if not self.expanding:
            return tuple(params)
        try:
            return (tuple(params), tuple(len(params[key]) for key in self.expanding))
        except (KeyError, TypeError):
            return None

    def _compile(self, dialect: sa.Dialect, params: Mapping[str, Any]) -> _Plan:
        statement: Any = self.statement
        compiled: Any = statement.compile(dialect=dialect, column_keys=list(params))
        if self.expanding is None:
            self.expanding = tuple(
                bind.key for bind in compiled.binds.values() if bind.expanding)
        if (getattr(compiled, "literal_execute_params", None)
                or getattr(compiled, "insert_prefetch", None)
                or getattr(compiled, "update_prefetch", None)
                or getattr(compiled, "effective_returning", None)
                or any(bind.callable is not None for bind in compiled.binds.values())):
            raise _Unprepared
        state = compiled.construct_expanded_state(dict(params))
        origin: dict[str, tuple[str, int]] = {}
        for name, expanded in state.parameter_expansion.items():
            for index, each in enumerate(expanded):
                origin[each] = (name, index)
        order = (list(state.positiontup) if state.positiontup is not None
                 else list(state.parameters))
        slots = []
        for name in order:
            bound, index = origin.get(name, (name, -1))
            bind = compiled.binds.get(bound)
            if bind is None:
                raise _Unprepared  # an escaped name or a form not foreseen
            # the type's own bind processor, as SQLAlchemy derives it for the dialect
            process = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if bind.key in params:
                slots.append((bind.key, index, None, process))
            else:
                value = state.parameters[name]
                slots.append(("", -1, value if value is None or process is None
                              else process(value), None))
        plan = _Plan(state.statement, slots,
                     None if state.positiontup is not None else order)
        if self.query:
            keys = list(statement.selected_columns.keys())
            if len(set(keys)) != len(keys):
                raise _Unprepared
            try:
                plan.rows = collections.namedtuple("Row", keys)  # type: ignore[misc]
            except ValueError as exc:  # a name a tuple's field cannot have
                raise _Unprepared from exc
            plan.readers = [column.type.dialect_impl(dialect).result_processor(dialect, None)
                            for column in statement.selected_columns]
        return plan


def _plan_of(statement: sa.Executable, dialect: sa.Dialect,
             params: Sequence[Mapping[str, Any]] | Mapping[str, Any] | None) -> _Plan | None:
    """The plan ``statement`` runs by with ``params``; None: run it the usual way."""
    found = _PREPARED.get(id(statement))
    if found is None or found.statement is not statement:
        return None
    if isinstance(params, list | tuple):  # an executemany: no queries, no expanding lists
        if not params or found.query:
            return None
        names = params[0].keys()
        if any(each.keys() != names for each in params):
            return None  # rows of different names: SQLAlchemy says what is wrong
        plan = found.plan(dialect, params[0])
        return None if found.expanding else plan
    return found.plan(dialect, params or {})  # type: ignore[arg-type]


def run_prepared(connection: Connection, statement: sa.Executable,
                 params: Sequence[Mapping[str, Any]] | Mapping[str, Any] | None) -> Any:
    """Run ``statement`` on the driver's cursor if it is prepared and its plan allows; else
    `NotImplemented` (the caller runs it the usual way)."""
    plan = _plan_of(statement, connection.dialect, params)
    if plan is None:
        return NotImplemented
    many = isinstance(params, list | tuple)
    args: Any = None
    try:
        args = ([plan.bind(each) for each in params] if many  # type: ignore[union-attr, arg-type]
                else plan.bind(params or {}))  # type: ignore[arg-type]
    except Exception as exc:  # noqa: BLE001 - a value its processor refused: SQLAlchemy's
        # StatementError, as its own path raises for it
        connection._handle_dbapi_exception(exc, plan.sql, args, None, None)
    cursor = None
    try:
        cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
        if many:
            cursor.executemany(plan.sql, args)
        else:
            cursor.execute(plan.sql, args)
        if plan.rows is None:
            done = Done(cursor.rowcount)
            cursor.close()
            return done
        fetched = cursor.fetchall()
        cursor.close()
    except connection.dialect.loaded_dbapi.Error as exc:
        # as SQLAlchemy's own path: wrapped, a lost connection invalidated (the pool with
        # it), ``handle_error`` listeners called
        connection._handle_dbapi_exception(exc, plan.sql, args, cursor, None)
    except BaseException as exc:
        if not isinstance(exc, Exception):  # an interrupt: the connection's state is unknown
            connection._handle_dbapi_exception(exc, plan.sql, args, cursor, None)
        # what the driver raised that is no database error (a number too large for it):
        # raised as it is, as SQLAlchemy's path raises it
        if cursor is not None:
            cursor.close()
        raise
    row: Any = plan.rows
    readers = plan.readers or []
    if not any(readers):
        return Rows([row._make(each) for each in fetched], len(fetched))
    return Rows([row._make([value if read is None else read(value)
                            for read, value in zip(readers, each, strict=True)])
                 for each in fetched], len(fetched))

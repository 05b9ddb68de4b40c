"""The sandbox payment gateway: a deterministic provider driven by test tokens, its records in
memory (``sandbox://``) or in a file shared by processes (``sandbox:///var/sandbox.db``)."""

from __future__ import annotations

import json
import secrets
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import attrs

from commerce_core.clock import Clock, system_clock
from commerce_core.errors import (
    FieldError,
    IdempotencyKeyReused,
    InvalidInput,
    PaymentDeclined,
    PaymentUnavailable,
)
from commerce_core.money import Money
from commerce_core.payments.model import ProviderRefund
from commerce_core.payments.ports import (
    ALREADY_CAPTURED,
    AUTHORIZATION_EXPIRED,
    GatewayAuthorization,
)

__all__ = ["SANDBOX_TOKENS", "SandboxAuthorization", "SandboxPaymentGateway"]

#: The tokens the sandbox understands, and what each does. Unknown tokens are declined.
SANDBOX_TOKENS = {
    "tok_visa": "approves",
    "tok_declined": "is declined (card_declined)",
    "tok_insufficient_funds": "is declined (insufficient_funds)",
    "tok_timeout": "times out on every try",
    "tok_flaky": "fails transiently twice, then approves",
}

_DECLINES = {"tok_declined": "card_declined", "tok_insufficient_funds": "insufficient_funds"}


@attrs.define
class SandboxAuthorization:
    """The sandbox's own record of an authorization: what the provider's dashboard shows."""

    id: str
    reference: str
    token: str
    amount: Money
    idempotency_key: str
    status: str = "authorized"  # authorized, voided, captured, expired
    captured: int = 0
    refunded: int = 0
    #: every refund: ``{"id", "amount", "key"}`` (``key`` is None for one made in the
    #: dashboard, `SandboxPaymentGateway.refund_outside`)
    refunds: list[dict[str, Any]] = attrs.field(factory=list)
    #: when the hold lapses (ISO 8601), if the sandbox was given a ``hold``
    expires_at: str | None = None

    def to_json(self) -> dict[str, Any]:
        data = attrs.asdict(self)
        data["amount"] = {"amount": self.amount.amount, "currency": self.amount.currency}
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SandboxAuthorization:
        return cls(**{**data, "amount": Money(**data["amount"])})

    def lapse_if_due(self, now: datetime) -> bool:
        """An uncaptured hold past its deadline lapses (as a card hold does); true if so."""
        if (self.status == "authorized" and self.expires_at is not None
                and now >= datetime.fromisoformat(self.expires_at)):
            self.status = "expired"
            return True
        return False


# -- where the provider keeps its records --------------------------------------------------


class _Records(Protocol):
    """Tables of JSON values, changed only inside `transaction()`."""

    def transaction(self) -> Any: ...
    def get(self, table: str, key: str) -> Any: ...
    def put(self, table: str, key: str, value: Any) -> None: ...
    def values(self, table: str) -> list[Any]: ...
    def close(self) -> None: ...


class _MemoryRecords:
    def __init__(self) -> None:
        self._tables: dict[str, dict[str, str]] = {}
        self._lock = threading.RLock()

    def close(self) -> None:
        """Nothing to release: the records live as long as the sandbox."""

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self._lock:
            yield

    def get(self, table: str, key: str) -> Any:
        raw = self._tables.get(table, {}).get(key)
        return None if raw is None else json.loads(raw)

    def put(self, table: str, key: str, value: Any) -> None:
        self._tables.setdefault(table, {})[key] = json.dumps(value)

    def values(self, table: str) -> list[Any]:
        rows = self._tables.get(table, {})
        return [json.loads(rows[key]) for key in sorted(rows)]


class _FileRecords:
    """Records in a SQLite file (the standard library's sqlite3): every call is one immediate
    transaction, so processes sharing the file see one provider, and restarts forget nothing."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._path = path
        self._local = threading.local()
        self._opened: list[sqlite3.Connection] = []
        self._opening = threading.Lock()
        with self.transaction():
            self._db().execute("CREATE TABLE IF NOT EXISTS records (tbl TEXT NOT NULL, "
                               "key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (tbl, key))")

    def _db(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self._path, timeout=30, isolation_level=None,
                                 check_same_thread=False)  # closed by `close`, from any
            db.execute("PRAGMA journal_mode=WAL")
            self._local.db = db
            with self._opening:
                self._opened.append(db)
        return db

    def close(self) -> None:
        """Close every thread's connection (a thread that calls again opens a new one)."""
        with self._opening:
            opened, self._opened = self._opened, []
        self._local = threading.local()
        for db in opened:
            db.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def get(self, table: str, key: str) -> Any:
        row = self._db().execute("SELECT value FROM records WHERE tbl = ? AND key = ?",
                                 (table, key)).fetchone()
        return None if row is None else json.loads(row[0])

    def put(self, table: str, key: str, value: Any) -> None:
        self._db().execute("INSERT OR REPLACE INTO records (tbl, key, value) VALUES (?, ?, ?)",
                           (table, key, json.dumps(value)))

    def values(self, table: str) -> list[Any]:
        rows = self._db().execute("SELECT value FROM records WHERE tbl = ? ORDER BY key",
                                  (table,)).fetchall()
        return [json.loads(row[0]) for row in rows]


# -- the provider ----------------------------------------------------------------------------


def _unknown() -> PaymentDeclined:
    return PaymentDeclined("no such authorization", decline_code="unknown_authorization")


def _money(money: Money) -> dict[str, Any]:
    return {"amount": money.amount, "currency": money.currency}


def _authorization(auth_id: str, amount: Money, expires_at: str | None) -> GatewayAuthorization:
    return GatewayAuthorization(auth_id, amount, expires_at=None if expires_at is None
                                else datetime.fromisoformat(expires_at))


class SandboxPaymentGateway:
    """A `PaymentGateway` that needs no network.

    Deterministic per token (see `SANDBOX_TOKENS`) and idempotent per key like a real
    provider: the same key with the same parameters returns the first outcome (a decline
    included), with other parameters raises `IdempotencyKeyReused`.

    ``SandboxPaymentGateway()`` keeps its records in memory; ``SandboxPaymentGateway(path)``
    keeps them in a file, so that several processes (server workers) share one provider and a
    restart forgets nothing, as with a real provider.

    Three switches let tests inject provider faults into any operation (``"authorize"``,
    ``"capture"``, ``"void"``, ``"refund"``, ``"find_authorization"``,
    ``"list_refunds"``): ``outage`` makes calls fail as unavailable before doing anything;
    ``lose_responses`` lets the call take effect and then fails it as unavailable (a
    response lost on the way back); ``declines`` refuses them (``PaymentDeclined``,
    ``decline_code="declined_by_sandbox"``), as a provider refuses a refund.

    With a ``hold`` (a `timedelta`), every authorization says when it lapses
    (``expires_at``, by ``clock``), and an uncaptured hold past it can no longer be captured
    (``authorization_expired``), as a card hold lapses after some days. A capture made in
    time stays made: repeated under its key, it is replayed, however late.
    """

    def __init__(self, path: str | Path | None = None, *, clock: Clock = system_clock,
                 hold: timedelta | None = None) -> None:
        self._records: _Records = _MemoryRecords() if path is None else _FileRecords(Path(path))
        self.clock = clock
        self.hold = hold
        self.outage: set[str] = set()
        self.lose_responses: set[str] = set()
        self.declines: set[str] = set()

    @classmethod
    def from_url(cls, url: str) -> SandboxPaymentGateway:
        """``sandbox://`` (memory), ``sandbox:///relative/state.db`` or
        ``sandbox:////absolute/state.db`` (a file, as SQLAlchemy's ``sqlite:///`` URLs)."""
        rest = url.split("://", 1)[1]
        if not rest:
            return cls()
        if not rest.startswith("/") or len(rest) == 1:
            raise InvalidInput("invalid sandbox URL", [FieldError(
                "url", "use sandbox:// or sandbox:///path/to/state.db")])
        return cls(rest[1:])

    # -- inspection (what the provider's dashboard would show) ----------------------------

    def close(self) -> None:
        """Release the records' file connections (`Platform.close` calls it)."""
        self._records.close()

    def authorizations(self) -> list[SandboxAuthorization]:
        """Every authorization the sandbox made, in order."""
        with self._records.transaction():
            return [SandboxAuthorization.from_json(a) for a in self._records.values("auths")]

    def refund_outside(self, authorization_id: str, amount: Money) -> str:
        """Refund part of a capture as a person in the provider's dashboard would: no
        idempotency key of ours, and nothing told to the library (a fault to inject: its
        books no longer agree until it learns of the refund)."""
        with self._records.transaction():
            auth = self._get(authorization_id)
            if auth.status != "captured" or amount.amount > auth.captured - auth.refunded:
                raise PaymentDeclined("nothing captured to refund",
                                      decline_code="amount_too_large")
            refund_id = self._refund(auth, amount, None)
            self._save(auth)
            return refund_id

    def expire_authorization(self, authorization_id: str) -> None:
        """Let a hold lapse, as a real provider does after some days: it can no longer be
        captured (a fault to inject, like ``outage``)."""
        with self._records.transaction():
            auth = self._get(authorization_id)
            auth.status = "expired"
            self._save(auth)

    # -- the port -------------------------------------------------------------------------

    def authorize(
        self, *, token: str, amount: Money, idempotency_key: str, reference: str
    ) -> GatewayAuthorization:
        def do() -> Any:
            if token == "tok_timeout":
                return PaymentUnavailable("sandbox: the provider timed out")
            if token == "tok_flaky":
                attempt = (self._records.get("attempts", idempotency_key) or 0) + 1
                self._records.put("attempts", idempotency_key, attempt)
                if attempt <= 2:
                    return PaymentUnavailable(f"sandbox: transient failure {attempt} of 2")
            if token not in {"tok_visa", "tok_flaky"}:
                code = _DECLINES.get(token, "invalid_token")
                return PaymentDeclined(f"payment declined: {code}", decline_code=code)
            number = (self._records.get("meta", "next") or 0) + 1
            self._records.put("meta", "next", number)
            # the counter keeps the dashboard in order; the random part keeps ids unique
            # even between separate sandboxes, as a real provider's ids are
            expires = None if self.hold is None else (self.clock() + self.hold).isoformat()
            auth = SandboxAuthorization(f"auth_{number:08d}_{secrets.token_hex(4)}", reference,
                                        token, amount, idempotency_key, expires_at=expires)
            self._save(auth)
            self._records.put("auth_by_key", idempotency_key, auth.id)
            return {"id": auth.id, "amount": _money(amount), "expires_at": expires}

        outcome = self._idempotent("authorize", idempotency_key,
                                   [token, _money(amount), reference], do)
        return _authorization(outcome["id"], Money(**outcome["amount"]),
                              outcome.get("expires_at"))

    def capture(self, *, authorization_id: str, amount: Money, idempotency_key: str) -> None:
        def do() -> Any:
            auth = self._find(authorization_id)
            if auth is None:
                return _unknown()
            if auth.lapse_if_due(self.clock()):
                self._save(auth)
            if auth.status == "captured" and auth.captured == amount.amount:
                return None  # captured already (under another key): the outcome asked for
            if auth.status != "authorized":
                return PaymentDeclined(f"authorization is {auth.status}", decline_code=(
                    AUTHORIZATION_EXPIRED if auth.status == "expired"
                    else f"authorization_{auth.status}"))
            if amount.currency != auth.amount.currency or amount.amount > auth.amount.amount:
                return PaymentDeclined("capture exceeds the authorization",
                                       decline_code="amount_too_large")
            auth.status, auth.captured = "captured", amount.amount
            self._save(auth)
            return None

        self._idempotent("capture", idempotency_key, [authorization_id, _money(amount)], do)

    def void(self, *, authorization_id: str, idempotency_key: str) -> None:
        def do() -> Any:
            auth = self._find(authorization_id)
            if auth is None:
                return _unknown()
            if auth.status == "captured":
                return PaymentDeclined("already captured", decline_code=ALREADY_CAPTURED,
                                       captured=auth.captured)
            if auth.status == "authorized":  # voiding a lapsed hold changes nothing, and is fine
                auth.status = "voided"
                self._save(auth)
            return None

        self._idempotent("void", idempotency_key, [authorization_id], do)

    def refund(self, *, authorization_id: str, amount: Money, idempotency_key: str) -> str:
        def do() -> Any:
            auth = self._find(authorization_id)
            if auth is None:
                return _unknown()
            if auth.status != "captured":
                return PaymentDeclined("nothing captured to refund", decline_code="not_captured")
            if amount.amount > auth.captured - auth.refunded:
                return PaymentDeclined("refund exceeds the capture",
                                       decline_code="amount_too_large")
            refund_id = self._refund(auth, amount, idempotency_key)
            self._save(auth)
            return refund_id

        return str(self._idempotent("refund", idempotency_key,
                                    [authorization_id, _money(amount)], do))

    def list_refunds(self, *, authorization_id: str) -> list[ProviderRefund]:
        """Every refund of the payment, oldest first, with the key it was made under
        (`commerce_core.payments.RefundLookup`)."""
        self._fault_before("list_refunds")
        with self._records.transaction():
            auth = self._get(authorization_id)
        return [ProviderRefund(r["id"], Money(r["amount"], auth.amount.currency), r["key"])
                for r in auth.refunds]

    def find_authorization(self, *, idempotency_key: str) -> GatewayAuthorization | None:
        self._fault_before("find_authorization")
        with self._records.transaction():
            auth_id = self._records.get("auth_by_key", idempotency_key)
            auth = None if auth_id is None else self._find(auth_id)
        if auth is None or auth.status != "authorized":
            return None
        return _authorization(auth.id, auth.amount, auth.expires_at)

    # -- internals ------------------------------------------------------------------------

    def _fault_before(self, operation: str) -> None:
        if operation in self.outage:
            raise PaymentUnavailable(f"sandbox: {operation} is unavailable (injected outage)")

    def _refund(self, auth: SandboxAuthorization, amount: Money, key: str | None) -> str:
        auth.refunded += amount.amount
        number = (self._records.get("meta", "next") or 0) + 1
        self._records.put("meta", "next", number)
        refund_id = f"re_{number:08d}_{secrets.token_hex(4)}"
        auth.refunds.append({"id": refund_id, "amount": amount.amount, "key": key})
        return refund_id

    def _idempotent(self, operation: str, key: str, params: list[Any],
                    do: Callable[[], Any]) -> Any:
        """Run ``do`` once per (operation, key); replay its outcome for the same parameters.

        ``do`` returns its outcome (a decline is one) or a `PaymentUnavailable`, which
        is not remembered: the next try with the key does the work for real. Nothing is raised
        inside the transaction, so what ``do`` wrote (a flaky token's attempt count) is kept.
        """
        self._fault_before(operation)
        scoped = f"{operation}:{key}"
        with self._records.transaction():
            seen = self._records.get("keys", scoped)
            if seen is None:
                outcome = (PaymentDeclined(f"sandbox: {operation} declined (injected)",
                                           decline_code="declined_by_sandbox")
                           if operation in self.declines else do())
                if isinstance(outcome, PaymentDeclined):
                    seen = {"params": params, "declined": [
                        outcome.message, outcome.decline_code, outcome.captured]}
                elif not isinstance(outcome, PaymentUnavailable):
                    seen = {"params": params, "outcome": outcome}
                if seen is not None:
                    self._records.put("keys", scoped, seen)
            else:
                outcome = None
        if isinstance(outcome, PaymentUnavailable):
            raise outcome
        assert seen is not None, "recorded just above unless unavailable"
        if seen["params"] != json.loads(json.dumps(params)):
            raise IdempotencyKeyReused(key)
        if operation in self.lose_responses:
            raise PaymentUnavailable(f"sandbox: the response to {operation} was lost")
        if "declined" in seen:
            message, code, *rest = seen["declined"]  # records of 0.1 keep no amount
            raise PaymentDeclined(message, decline_code=code, captured=rest[0] if rest else None)
        return seen["outcome"]

    def _find(self, authorization_id: str) -> SandboxAuthorization | None:
        data = self._records.get("auths", authorization_id)
        return None if data is None else SandboxAuthorization.from_json(data)

    def _get(self, authorization_id: str) -> SandboxAuthorization:
        auth = self._find(authorization_id)
        if auth is None:
            raise _unknown()
        return auth

    def _save(self, auth: SandboxAuthorization) -> None:
        self._records.put("auths", auth.id, auth.to_json())

"""The sandbox payment gateway: a deterministic provider in memory, driven by test tokens."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from typing import TypeVar

import attrs

from commerce_core.errors import IdempotencyKeyReused, PaymentDeclined, PaymentUnavailable
from commerce_core.money import Money
from commerce_core.payments.ports import GatewayAuthorization

__all__ = ["SANDBOX_TOKENS", "SandboxAuthorization", "SandboxPaymentGateway"]

T = TypeVar("T")

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


class SandboxPaymentGateway:
    """A :class:`~commerce_core.payments.PaymentGateway` that needs no network (``sandbox://``).

    Deterministic per token (see :data:`SANDBOX_TOKENS`) and idempotent per key like a real
    provider: the same key with the same parameters returns the first outcome, with other
    parameters raises :class:`~commerce_core.errors.IdempotencyKeyReused`.

    Two switches let tests inject provider faults into any operation (``"authorize"``,
    ``"capture"``, ``"void"``, ``"refund"``, ``"find_authorization"``):
    ``outage`` makes calls fail as unavailable before doing anything; ``lose_responses`` lets
    the call take effect and then fails it as unavailable (a response lost on the way back).
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._ids = itertools.count(1)
        self._authorizations: dict[str, SandboxAuthorization] = {}
        self._by_key: dict[str, tuple[tuple[object, ...], object]] = {}
        self._attempts: dict[str, int] = {}
        self.outage: set[str] = set()
        self.lose_responses: set[str] = set()

    @classmethod
    def from_url(cls, url: str) -> SandboxPaymentGateway:
        return cls()

    # -- inspection (what the provider's dashboard would show) ----------------------------

    def authorizations(self) -> list[SandboxAuthorization]:
        """Copies of every authorization the sandbox made, in order."""
        with self._lock:
            return [attrs.evolve(a) for a in self._authorizations.values()]

    def expire_authorization(self, authorization_id: str) -> None:
        """Let a hold lapse, as a real provider does after some days: it can no longer be
        captured (a fault to inject, like ``outage``)."""
        with self._lock:
            self._get(authorization_id).status = "expired"

    # -- the port -------------------------------------------------------------------------

    def authorize(
        self, *, token: str, amount: Money, idempotency_key: str, reference: str
    ) -> GatewayAuthorization:
        def do() -> GatewayAuthorization:
            if token == "tok_timeout":
                raise PaymentUnavailable("sandbox: the provider timed out")
            if token == "tok_flaky":
                attempt = self._attempts[idempotency_key] = self._attempts.get(
                    idempotency_key, 0) + 1
                if attempt <= 2:
                    raise PaymentUnavailable(f"sandbox: transient failure {attempt} of 2")
            if token not in {"tok_visa", "tok_flaky"}:
                code = _DECLINES.get(token, "invalid_token")
                raise PaymentDeclined(f"payment declined: {code}", decline_code=code)
            auth = SandboxAuthorization(
                f"auth_{next(self._ids):06d}", reference, token, amount, idempotency_key
            )
            self._authorizations[auth.id] = auth
            return GatewayAuthorization(auth.id, amount)

        return self._idempotent("authorize", idempotency_key, (token, amount, reference), do)

    def capture(self, *, authorization_id: str, amount: Money, idempotency_key: str) -> None:
        def do() -> None:
            auth = self._live(authorization_id)
            if amount.currency != auth.amount.currency or amount.amount > auth.amount.amount:
                raise PaymentDeclined("capture exceeds the authorization",
                                      decline_code="amount_too_large")
            auth.status, auth.captured = "captured", amount.amount

        self._idempotent("capture", idempotency_key, (authorization_id, amount), do)

    def void(self, *, authorization_id: str, idempotency_key: str) -> None:
        def do() -> None:
            auth = self._get(authorization_id)
            if auth.status == "captured":
                raise PaymentDeclined("already captured", decline_code="already_captured")
            if auth.status == "authorized":
                auth.status = "voided"  # voiding a lapsed hold changes nothing, and is fine

        self._idempotent("void", idempotency_key, (authorization_id,), do)

    def refund(self, *, authorization_id: str, amount: Money, idempotency_key: str) -> str:
        def do() -> str:
            auth = self._get(authorization_id)
            if auth.status != "captured":
                raise PaymentDeclined("nothing captured to refund", decline_code="not_captured")
            if amount.amount > auth.captured - auth.refunded:
                raise PaymentDeclined("refund exceeds the capture",
                                      decline_code="amount_too_large")
            auth.refunded += amount.amount
            return f"re_{next(self._ids):06d}"

        return self._idempotent("refund", idempotency_key, (authorization_id, amount), do)

    def find_authorization(self, *, idempotency_key: str) -> GatewayAuthorization | None:
        with self._lock:
            self._fault_before("find_authorization")
            for auth in self._authorizations.values():
                if auth.idempotency_key == idempotency_key and auth.status == "authorized":
                    return GatewayAuthorization(auth.id, auth.amount)
            return None

    # -- internals ------------------------------------------------------------------------

    def _fault_before(self, operation: str) -> None:
        if operation in self.outage:
            raise PaymentUnavailable(f"sandbox: {operation} is unavailable (injected outage)")

    def _idempotent(
        self, operation: str, key: str, params: tuple[object, ...], do: Callable[[], T]
    ) -> T:
        with self._lock:
            self._fault_before(operation)
            scoped = f"{operation}:{key}"
            if scoped in self._by_key:
                seen, outcome = self._by_key[scoped]
                if seen != params:
                    raise IdempotencyKeyReused(key)
            else:
                try:
                    outcome = do()
                except PaymentDeclined as exc:
                    outcome = exc  # a decline is an outcome: replayed like a success
                except PaymentUnavailable:
                    raise  # nothing happened: the next try does it for real
                self._by_key[scoped] = (params, outcome)
            if operation in self.lose_responses:
                raise PaymentUnavailable(f"sandbox: the response to {operation} was lost")
            if isinstance(outcome, PaymentDeclined):
                raise PaymentDeclined(outcome.message, decline_code=outcome.decline_code)
            return outcome  # type: ignore[return-value]

    def _get(self, authorization_id: str) -> SandboxAuthorization:
        auth = self._authorizations.get(authorization_id)
        if auth is None:
            raise PaymentDeclined("no such authorization", decline_code="unknown_authorization")
        return auth

    def _live(self, authorization_id: str) -> SandboxAuthorization:
        auth = self._get(authorization_id)
        if auth.status != "authorized":
            raise PaymentDeclined(f"authorization is {auth.status}",
                                  decline_code=f"authorization_{auth.status}")
        return auth

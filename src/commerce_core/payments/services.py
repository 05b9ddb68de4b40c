"""The payment service: gateway calls with retries of transient faults."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import TypeVar

from commerce_core.errors import PaymentDeclined, PaymentUnavailable
from commerce_core.money import Money
from commerce_core.payments.model import ProviderRefund
from commerce_core.payments.ports import (
    DelayedLookup,
    GatewayAuthorization,
    PaymentGateway,
    RefundLookup,
)
from commerce_core.retry import RetryPolicy
from commerce_core.telemetry import Telemetry, Timer, guarded

__all__ = ["PaymentService"]

_TRANSIENT = (PaymentUnavailable,)

T = TypeVar("T")


class PaymentService:
    """Calls the gateway, retrying `PaymentUnavailable` under the retry policy.

    Retries reuse the idempotency key, so a retry after a lost response never charges twice.
    Every call (each retry too) is a span and a ``provider_call`` of the `Telemetry`.
    """

    def __init__(self, gateway: PaymentGateway, *, retry: RetryPolicy | None = None,
                 telemetry: Telemetry | None = None) -> None:
        self.gateway = gateway
        self.retry = retry or RetryPolicy()
        self.telemetry: Telemetry = guarded(telemetry)

    def _call(self, operation: str, call: Callable[[], T]) -> T:
        """One call to the provider, timed and its outcome told."""
        timer = Timer()
        outcome = "error"
        with self.telemetry.span(f"payment.{operation}", {"commerce.operation": operation}):
            try:
                result = call()
                outcome = "ok"
                return result
            except PaymentDeclined:
                outcome = "declined"
                raise
            except PaymentUnavailable:
                outcome = "unavailable"
                raise
            finally:  # inside the span: a tracer sets the outcome on it
                self.telemetry.record("provider_call", seconds=timer.seconds,
                                      operation=operation, outcome=outcome)

    def authorize(
        self, *, token: str, amount: Money, idempotency_key: str, reference: str
    ) -> GatewayAuthorization:
        return self.retry.call(
            lambda: self._call("authorize", lambda: self.gateway.authorize(
                token=token, amount=amount, idempotency_key=idempotency_key,
                reference=reference)),
            retry_on=_TRANSIENT,
        )

    @property
    def lookup_delay(self) -> timedelta:
        """How long after an authorization the gateway's lookup may still miss it."""
        if isinstance(self.gateway, DelayedLookup):
            delay = self.gateway.lookup_delay
            if isinstance(delay, timedelta):
                return delay
        return timedelta(0)

    def find_authorization(self, idempotency_key: str) -> GatewayAuthorization | None:
        return self.retry.call(
            lambda: self._call("find_authorization", lambda: self.gateway.find_authorization(
                idempotency_key=idempotency_key)),
            retry_on=_TRANSIENT,
        )

    def capture(self, *, authorization_id: str, amount: Money, idempotency_key: str) -> None:
        self.retry.call(
            lambda: self._call("capture", lambda: self.gateway.capture(
                authorization_id=authorization_id, amount=amount,
                idempotency_key=idempotency_key)),
            retry_on=_TRANSIENT,
        )

    def void(self, *, authorization_id: str, idempotency_key: str) -> None:
        self.retry.call(
            lambda: self._call("void", lambda: self.gateway.void(
                authorization_id=authorization_id, idempotency_key=idempotency_key)),
            retry_on=_TRANSIENT,
        )

    def refund(self, *, authorization_id: str, amount: Money, idempotency_key: str) -> str:
        return self.retry.call(
            lambda: self._call("refund", lambda: self.gateway.refund(
                authorization_id=authorization_id, amount=amount,
                idempotency_key=idempotency_key)),
            retry_on=_TRANSIENT,
        )

    def list_refunds(self, *, authorization_id: str) -> Sequence[ProviderRefund] | None:
        """The payment's refunds as the provider's books show them, or ``None`` when the
        gateway cannot list them (`RefundLookup`)."""
        gateway = self.gateway
        if not isinstance(gateway, RefundLookup):
            return None
        return self.retry.call(
            lambda: self._call("list_refunds", lambda: gateway.list_refunds(
                authorization_id=authorization_id)),
            retry_on=_TRANSIENT)

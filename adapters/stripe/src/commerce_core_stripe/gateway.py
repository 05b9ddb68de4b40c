"""`PaymentGateway` on Stripe's PaymentIntents with manual capture, through the official
``stripe`` client.

Authorize creates and confirms a PaymentIntent with ``capture_method=manual`` (a hold on
the card); capture takes all or part of it; void cancels it; refunds are partial and
repeatable. Every mutating call sends the saga's idempotency key (``<order>:authorize``,
``<order>:capture``, ``<order>:void``, ``<order>:refund:<n>``) as Stripe's
``Idempotency-Key``, so a retry after a lost response never charges twice. The client's own
retries are off: `PaymentService` retries with the same key, under its policy.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

import stripe
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

__all__ = ["StripePaymentGateway"]

log = logging.getLogger("commerce_core_stripe")

T = TypeVar("T")

#: metadata keys on every PaymentIntent this adapter creates
KEY_FIELD = "commerce_key"
REFERENCE_FIELD = "commerce_reference"

_SAFE_KEY = re.compile(r"[^'\\]{1,255}")


class StripePaymentGateway:
    """Stripe as the payment provider.

    ``api_base`` points the official client elsewhere (the local provider in tests);
    ``timeout`` bounds every HTTP call, in seconds.
    """

    def __init__(self, api_key: str, *, api_base: str | None = None, timeout: float = 10.0,
                 stripe_version: str | None = None,
                 lookup_delay: timedelta = timedelta(seconds=60)) -> None:
        #: Stripe's search may miss a PaymentIntent for up to a minute: until then, "not
        #: found" after a lost response is not believed (the saga decides later)
        self.lookup_delay = lookup_delay
        addresses: dict[str, str] = {"api": api_base} if api_base else {}
        self._http = stripe.RequestsClient(timeout=timeout)
        self.client = stripe.StripeClient(
            api_key, base_addresses=addresses,  # type: ignore[arg-type]
            max_network_retries=0, stripe_version=stripe_version, http_client=self._http,
        )

    def close(self) -> None:
        """Close the HTTP connections to Stripe (`Platform.close` calls it)."""
        self._http.close()  # type: ignore[no-untyped-call]  # stripe leaves it untyped

    @classmethod
    def from_url(cls, url: str) -> StripePaymentGateway:
        """``stripe://sk_live_...@api.stripe.com`` (HTTPS), or
        ``stripe+http://sk_test_...@127.0.0.1:12111`` for the local provider; optional
        ``?timeout=10`` and ``?lookup_delay=60`` in seconds (the search lag to allow for:
        60 by default on Stripe, 0 on the local provider, whose search is immediate)."""
        parts = urlsplit(url)
        key = parts.username
        if not key or not parts.hostname:
            raise InvalidInput("invalid payment gateway URL", [FieldError(
                "url", "expected stripe://<secret key>@api.stripe.com")])
        scheme = "http" if parts.scheme.endswith("+http") else "https"
        port = f":{parts.port}" if parts.port else ""
        options = parse_qs(parts.query)
        try:
            timeout = float(options.get("timeout", ["10"])[-1])
            lag = float(options.get("lookup_delay", ["0" if scheme == "http" else "60"])[-1])
        except ValueError as exc:
            raise InvalidInput("invalid payment gateway URL", [
                FieldError("url", "timeout and lookup_delay are numbers of seconds")]) from exc
        return cls(key, api_base=f"{scheme}://{parts.hostname}{port}", timeout=timeout,
                   lookup_delay=timedelta(seconds=lag))

    # -- the port --------------------------------------------------------------------------

    def authorize(
        self, *, token: str, amount: Money, idempotency_key: str, reference: str
    ) -> GatewayAuthorization:
        intent = self._call(lambda: self.client.v1.payment_intents.create(
            params={
                "amount": amount.amount, "currency": amount.currency.lower(),
                "payment_method": token, "confirm": True, "capture_method": "manual",
                # no redirect-based methods: there is no customer browser to send anywhere
                "automatic_payment_methods": {"enabled": True, "allow_redirects": "never"},
                "metadata": {KEY_FIELD: idempotency_key, REFERENCE_FIELD: reference},
                "expand": ["latest_charge"],  # where the hold's capture_before is
            },
            options={"idempotency_key": idempotency_key},
        ), key=idempotency_key)
        if intent.status != "requires_capture":
            # e.g. requires_action (3-D Secure): not a hold we can capture
            raise PaymentDeclined(f"payment not authorized: {intent.status}",
                                  decline_code=str(intent.status))
        return _authorization(intent)

    def capture(self, *, authorization_id: str, amount: Money, idempotency_key: str) -> None:
        try:
            self._call(lambda: self.client.v1.payment_intents.capture(
                authorization_id, params={"amount_to_capture": amount.amount},
                options={"idempotency_key": idempotency_key},
            ), key=idempotency_key)
        except _UnexpectedState as state:
            intent = state.intent
            if intent.get("status") == "succeeded" and intent.get(
                    "amount_received") == amount.amount:
                return  # captured already (under another key): the same outcome
            if intent.get("cancellation_reason") == "automatic":
                raise PaymentDeclined("the authorization expired before capture",
                                      decline_code=AUTHORIZATION_EXPIRED) from None
            raise PaymentDeclined(f"cannot capture a payment that is {intent.get('status')}",
                                  decline_code="unexpected_state") from None

    def void(self, *, authorization_id: str, idempotency_key: str) -> None:
        try:
            self._call(lambda: self.client.v1.payment_intents.cancel(
                authorization_id, options={"idempotency_key": idempotency_key},
            ), key=idempotency_key)
        except _UnexpectedState as state:
            status = state.intent.get("status")
            if status == "succeeded":  # captured: the saga records it as such
                received = state.intent.get("amount_received")
                raise PaymentDeclined(
                    "cannot void a payment that was captured", decline_code=ALREADY_CAPTURED,
                    captured=received if isinstance(received, int) else None) from None
            if status != "canceled":  # canceled already is the outcome
                raise PaymentDeclined(f"cannot void a payment that is {status}",
                                      decline_code="unexpected_state") from None

    def refund(self, *, authorization_id: str, amount: Money, idempotency_key: str) -> str:
        refund = self._call(lambda: self.client.v1.refunds.create(
            params={"payment_intent": authorization_id, "amount": amount.amount,
                    # so that refund webhooks tell ours from those made in the dashboard
                    "metadata": {KEY_FIELD: idempotency_key}},
            options={"idempotency_key": idempotency_key},
        ), key=idempotency_key)
        return str(refund.id)

    def list_refunds(self, *, authorization_id: str) -> list[ProviderRefund]:
        """Every refund of the PaymentIntent, oldest first, with the key this adapter made
        it under (``None`` for one made in Stripe's dashboard)."""
        def read() -> list[ProviderRefund]:
            page = self.client.v1.refunds.list(
                params={"payment_intent": authorization_id, "limit": 100})
            refunds = []
            for refund in page.auto_paging_iter():
                metadata: dict[str, Any] = refund.to_dict().get("metadata") or {}
                key = metadata.get(KEY_FIELD)
                refunds.append(ProviderRefund(
                    str(refund.id), Money(int(refund.amount), str(refund.currency).upper()),
                    str(key) if key is not None else None))
            return refunds

        return list(reversed(self._call(read, key=authorization_id)))

    def find_authorization(self, *, idempotency_key: str) -> GatewayAuthorization | None:
        """The live hold made under this key, found through the metadata every intent of
        ours carries (Stripe's search; on Stripe itself it may lag a new intent by a
        minute, which recovery's grace period covers)."""
        if not _SAFE_KEY.fullmatch(idempotency_key):
            raise InvalidInput("invalid idempotency key", [
                FieldError("idempotency_key", "quotes and backslashes are not searchable")])
        found = self._call(lambda: self.client.v1.payment_intents.search(
            params={"query": f"metadata['{KEY_FIELD}']:'{idempotency_key}'",
                    "expand": ["data.latest_charge"]}),
            key=idempotency_key)
        for intent in found.data:
            if intent.status == "requires_capture":
                return _authorization(intent)
        return None

    # -- errors ----------------------------------------------------------------------------

    def _call(self, fn: Callable[[], T], *, key: str) -> T:
        """Stripe's errors as the port's: declined (permanent) or unavailable (transient)."""
        try:
            return fn()
        except stripe.CardError as exc:
            error = exc.error
            code = (getattr(error, "decline_code", None) or exc.code or "card_declined")
            raise PaymentDeclined(exc.user_message or "card declined",
                                  decline_code=str(code)) from exc
        except stripe.IdempotencyError as exc:
            raise IdempotencyKeyReused(key) from exc
        except stripe.InvalidRequestError as exc:
            intent = getattr(exc.error, "payment_intent", None)
            if exc.code == "payment_intent_unexpected_state" and intent is not None:
                raise _UnexpectedState(intent.to_dict()) from exc
            raise PaymentDeclined(f"rejected by Stripe: {exc.user_message or exc}",
                                  decline_code=str(exc.code or "invalid_request")) from exc
        except (stripe.AuthenticationError, stripe.PermissionError) as exc:
            log.error("Stripe refused our credentials: %s", exc)
            raise PaymentUnavailable(f"payment provider refused our credentials: {exc}") \
                from exc
        except stripe.StripeError as exc:  # connection errors, timeouts, 429, 409, 5xx
            raise PaymentUnavailable(f"payment provider unavailable: {exc!r}") from exc


class _UnexpectedState(Exception):
    def __init__(self, intent: dict[str, Any]) -> None:
        super().__init__(intent.get("status"))
        self.intent = intent


def _authorization(intent: Any) -> GatewayAuthorization:
    data = intent.to_dict() if hasattr(intent, "to_dict") else dict(intent)
    charge = data.get("latest_charge")
    card = ((charge or {}).get("payment_method_details") or {}).get("card") or {} \
        if isinstance(charge, dict) else {}
    deadline = card.get("capture_before")
    return GatewayAuthorization(
        str(data["id"]), Money(int(data["amount_capturable"]), str(data["currency"]).upper()),
        expires_at=None if deadline is None else datetime.fromtimestamp(int(deadline), UTC))

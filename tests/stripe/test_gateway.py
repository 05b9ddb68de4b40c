"""The Stripe adapter, the code users run, against the local provider over real HTTP."""

from __future__ import annotations

from datetime import timedelta

import pytest

from commerce_core import InvalidInput, Money, PaymentDeclined, PaymentUnavailable
from commerce_core.payments import PaymentGateway
from commerce_core.testing.conformance import PaymentGatewayConformance
from commerce_core_stripe import StripeBooks, StripePaymentGateway
from tests.stripe.conftest import LocalStripe


@pytest.fixture
def payment_gateway(stripe: LocalStripe) -> PaymentGateway:
    return stripe.gateway()


@pytest.fixture
def gateway_tokens() -> dict[str, str]:
    return {"approve": "pm_card_visa", "decline": "pm_card_chargeDeclined"}


class TestStripeGateway(PaymentGatewayConformance):
    """The port's conformance suite, passed by Stripe's PaymentIntents."""


def _hold(gateway: StripePaymentGateway, key: str = "o1:authorize", amount: int = 4200) -> str:
    return gateway.authorize(token="pm_card_visa", amount=Money(amount, "EUR"),
                             idempotency_key=key, reference="o1").id


def test_a_hold_is_a_manual_capture_payment_intent_with_our_metadata(
    stripe: LocalStripe,
) -> None:
    authorization = stripe.gateway().authorize(
        token="pm_card_visa", amount=Money(4200, "EUR"), idempotency_key="o1:authorize",
        reference="o1")
    (intent,) = stripe.state()["payment_intents"]
    assert intent["id"] == authorization.id
    assert (intent["status"], intent["capture_method"]) == ("requires_capture", "manual")
    assert (intent["amount"], intent["currency"]) == (4200, "eur")
    assert intent["metadata"] == {"commerce_key": "o1:authorize", "commerce_reference": "o1"}
    assert authorization.amount == Money(4200, "EUR")


def test_partial_capture_then_refunds(stripe: LocalStripe) -> None:
    gateway = stripe.gateway()
    hold = _hold(gateway)
    gateway.capture(authorization_id=hold, amount=Money(3000, "EUR"),
                    idempotency_key="o1:capture")
    gateway.refund(authorization_id=hold, amount=Money(1000, "EUR"),
                   idempotency_key="o1:refund:1")
    (intent,) = stripe.state()["payment_intents"]
    assert (intent["amount_received"], intent["latest_charge"]["amount_refunded"]) \
        == (3000, 1000)
    with pytest.raises(PaymentDeclined):
        gateway.refund(authorization_id=hold, amount=Money(2001, "EUR"),
                       idempotency_key="o1:refund:2")


@pytest.mark.parametrize("fault", ["server_errors", "resets"])
def test_a_failing_provider_is_unavailable_and_nothing_happened(
    stripe: LocalStripe, fault: str
) -> None:
    stripe.faults(**{fault: 1.0})
    with pytest.raises(PaymentUnavailable):
        _hold(stripe.gateway())
    stripe.faults()
    assert stripe.state()["payment_intents"] == []


def test_a_lost_response_then_a_retry_holds_the_card_once(stripe: LocalStripe) -> None:
    gateway = stripe.gateway()
    stripe.faults(lost_responses=1.0)
    with pytest.raises(PaymentUnavailable):
        _hold(gateway)  # the hold was made; its answer was lost
    assert len(stripe.state()["payment_intents"]) == 1
    stripe.faults()
    found = gateway.find_authorization(idempotency_key="o1:authorize")
    again = _hold(gateway)  # the retry, under the same key: Stripe replays the first answer
    assert found is not None and again == found.id
    assert len(stripe.state()["payment_intents"]) == 1


def test_a_slow_provider_times_out(stripe: LocalStripe) -> None:
    stripe.faults(latency=1.5)
    with pytest.raises(PaymentUnavailable):
        _hold(stripe.gateway(timeout=0.5))


def test_a_timeout_after_the_work_then_a_retry_holds_the_card_once(
    stripe: LocalStripe,
) -> None:
    gateway = stripe.gateway(timeout=0.5)
    stripe.faults(slow_responses=1.0, slow_seconds=1.0)
    with pytest.raises(PaymentUnavailable):
        _hold(gateway)  # the hold is made; the answer comes too late
    stripe.faults()
    again = _hold(gateway)
    (intent,) = stripe.state()["payment_intents"]
    assert again == intent["id"]


def test_an_expired_hold_cannot_be_captured(stripe: LocalStripe) -> None:
    gateway = stripe.gateway()
    hold = _hold(gateway)
    assert stripe.control(f"expire:{hold}") == {"expired": True}
    with pytest.raises(PaymentDeclined) as caught:
        gateway.capture(authorization_id=hold, amount=Money(4200, "EUR"),
                        idempotency_key="o1:capture")
    assert caught.value.decline_code == "authorization_expired"
    assert gateway.find_authorization(idempotency_key="o1:authorize") is None


def test_a_wrong_key_is_unavailable_not_a_decline(stripe: LocalStripe) -> None:
    gateway = StripePaymentGateway.from_url(
        stripe.url.replace("sk_test_local", "pk_test_public"))
    with pytest.raises(PaymentUnavailable, match="credentials"):
        _hold(gateway)


def test_the_url_names_key_host_and_timeout() -> None:
    gateway = StripePaymentGateway.from_url("stripe://sk_test_x@api.stripe.com?timeout=3")
    assert gateway.lookup_delay == timedelta(seconds=60)  # Stripe's search lags
    local = StripePaymentGateway.from_url("stripe+http://sk_test_x@127.0.0.1:1?lookup_delay=2")
    assert local.lookup_delay == timedelta(seconds=2)
    for bad in ("stripe://api.stripe.com", "stripe://sk@api.stripe.com?timeout=soon"):
        with pytest.raises(InvalidInput):
            StripePaymentGateway.from_url(bad)


def test_the_books_read_back_through_the_api_page_by_page(stripe: LocalStripe) -> None:
    gateway = stripe.gateway()
    held = _hold(gateway, "o1:authorize")
    captured = _hold(gateway, "o2:authorize")
    gateway.capture(authorization_id=captured, amount=Money(4200, "EUR"),
                    idempotency_key="o2:capture")
    gateway.refund(authorization_id=captured, amount=Money(200, "EUR"),
                   idempotency_key="o2:refund:1")
    with pytest.raises(PaymentDeclined):
        gateway.authorize(token="pm_card_chargeDeclined", amount=Money(100, "EUR"),
                          idempotency_key="o3:authorize", reference="o3")
    books = StripeBooks.from_client(gateway.client, page_size=2)
    records = {r.idempotency_key: r for r in books.authorizations()}
    assert set(records) == {"o1:authorize", "o2:authorize", "o3:authorize"}
    assert (records["o1:authorize"].id, records["o1:authorize"].status) == (held, "authorized")
    second = records["o2:authorize"]
    assert (second.status, second.captured, second.refunded) == ("captured", 4200, 200)
    assert records["o3:authorize"].status == "declined"
    # the same books as the provider's own dashboard view
    assert sorted(books.authorizations(), key=lambda r: r.id) == sorted(
        StripeBooks(stripe.state()["payment_intents"]).authorizations(), key=lambda r: r.id)

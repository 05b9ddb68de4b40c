"""``POST /v1/webhooks/payments/stripe``: signed, fresh, deduplicated, applied once; a bad
signature is a 400 and changes nothing."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from commerce_core import InvalidInput, OrderStatus, Platform
from commerce_core_gateway import GatewayConfig, create_app, parse_api_keys
from commerce_core_stripe import StripeWebhooks
from commerce_core_stripe.provider import sign
from tests.gateway.conftest import KEYS, Client, make_platform, order_body, seed_shop

NEW, OLD = "whsec_new_secret", "whsec_old_secret"
URL = "/v1/webhooks/payments/stripe"


@pytest.fixture
def shop() -> Iterator[Platform]:
    platform = make_platform()
    seed_shop(platform)
    yield platform
    platform.close()


@pytest.fixture
def hooked(shop: Platform) -> Client:
    return Client(create_app(shop, GatewayConfig(
        api_keys=parse_api_keys(KEYS), webhooks={"stripe": StripeWebhooks([NEW, OLD])})))


def _expired(order_id: str, event_id: str = "evt_1") -> str:
    return json.dumps({
        "id": event_id, "object": "event", "type": "payment_intent.canceled",
        "data": {"object": {
            "id": "pi_1", "object": "payment_intent", "amount": 1250, "currency": "eur",
            "status": "canceled", "cancellation_reason": "automatic",
            "metadata": {"commerce_key": f"{order_id}:authorize",
                         "commerce_reference": order_id}}}})


def _deliver(client: Client, body: str, signature: str) -> Any:
    return client.post(URL, content=body, headers={"Stripe-Signature": signature,
                                                   "Content-Type": "application/json"})


def _confirmed(client: Client) -> str:
    placed = client.post("/v1/orders", key="al", json=order_body(("MUG", 1)),
                         headers={"Idempotency-Key": "k1"})
    assert placed.status_code == 201
    return str(placed.json()["id"])


def test_a_lapsed_hold_cancels_the_order_once(hooked: Client, shop: Platform) -> None:
    order_id = _confirmed(hooked)
    body = _expired(order_id)
    first = _deliver(hooked, body, sign(body, NEW))
    assert (first.status_code, first.json()) == (200, {"received": True, "outcome": "cancelled"})
    again = _deliver(hooked, body, sign(body, NEW))  # Stripe delivers at least once
    assert again.json() == {"received": True, "outcome": "duplicate"}
    assert shop.orders.get(order_id).status is OrderStatus.CANCELLED
    assert shop.inventory.stock("MUG").reserved == 0


@pytest.mark.parametrize("how", ["wrong secret", "altered body", "too old", "no header",
                                 "not json"])
def test_an_unverified_delivery_is_refused_and_changes_nothing(
    hooked: Client, shop: Platform, how: str
) -> None:
    order_id = _confirmed(hooked)
    body = _expired(order_id)
    signature = sign(body, NEW)
    if how == "wrong secret":
        signature = sign(body, "whsec_someone_else")
    elif how == "altered body":
        body = body.replace('"amount": 1250', '"amount": 1')
    elif how == "too old":
        signature = sign(body, NEW, timestamp=int(time.time()) - 3600)
    elif how == "no header":
        signature = ""
    else:
        body, signature = "{oops", sign("{oops", NEW)
    refused = _deliver(hooked, body, signature)
    assert refused.status_code == 400
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["type"].endswith("invalid-signature")
    assert shop.orders.get(order_id).status is OrderStatus.CONFIRMED
    good = _expired(order_id)  # the same event, properly signed, is still applied
    assert _deliver(hooked, good, sign(good, NEW)).json()["outcome"] == "cancelled"


def test_the_old_secret_still_verifies_during_rotation(hooked: Client) -> None:
    order_id = _confirmed(hooked)
    body = _expired(order_id)
    assert _deliver(hooked, body, sign(body, OLD)).json()["outcome"] == "cancelled"


def test_events_not_about_our_payments_are_acknowledged(hooked: Client) -> None:
    body = json.dumps({"id": "evt_x", "type": "customer.created",
                       "data": {"object": {"id": "cus_1", "object": "customer"}}})
    answer = _deliver(hooked, body, sign(body, NEW))
    assert answer.json() == {"received": True, "outcome": "ignored"}


def test_an_unconfigured_provider_is_not_found(hooked: Client) -> None:
    answer = hooked.post("/v1/webhooks/payments/adyen", content="{}")
    assert answer.status_code == 404


def test_no_secret_no_verifier() -> None:
    with pytest.raises(InvalidInput, match="secret"):
        StripeWebhooks.from_secrets(" , ")

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


#: the provider's ids of the orders' authorizations (the sandbox's, behind the gateway)
HOLDS: dict[str, str] = {}


def _intent(order_id: str, **changes: Any) -> dict[str, Any]:
    return {"id": HOLDS.get(order_id, "pi_1"), "object": "payment_intent", "amount": 1250,
            "currency": "eur", "status": "canceled", "cancellation_reason": "automatic",
            "metadata": {"commerce_key": f"{order_id}:authorize",
                         "commerce_reference": order_id}, **changes}


def _expired(order_id: str, event_id: str = "evt_1", **changes: Any) -> str:
    return json.dumps({"id": event_id, "object": "event", "type": "payment_intent.canceled",
                       "data": {"object": _intent(order_id, **changes)}})


def _deliver(client: Client, body: str, signature: str) -> Any:
    return client.post(URL, content=body, headers={"Stripe-Signature": signature,
                                                   "Content-Type": "application/json"})


def _confirmed(client: Client) -> str:
    placed = client.post("/v1/orders", key="al", json=order_body(("MUG", 1)),
                         headers={"Idempotency-Key": "k1"})
    assert placed.status_code == 201
    order_id = str(placed.json()["id"])
    platform: Platform = client.app.state.gateway.platform
    payment = platform.orders.payment(platform.orders.get(order_id))
    assert payment is not None and payment.authorization_id is not None
    HOLDS[order_id] = payment.authorization_id
    return order_id


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
                                 "signed in the future"])
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
        signature = sign(body, NEW, timestamp=int(time.time()) + 3600)
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


@pytest.mark.parametrize(("change", "path"), [
    ({"data": {"object": "pi_1"}}, "data.object"),
    ({"data": None}, "data.object"),
    ({"id": None}, "id"),
    ({"id": 7}, "id"),
    ({"object": {"id": None}}, "data.object.id"),
    ({"object": {"currency": None}}, "data.object.currency"),
    ({"object": {"currency": "euro"}}, "data.object.currency"),
    ({"object": {"amount": "1250"}}, "data.object.amount"),
    ({"object": {"amount": 12.5}}, "data.object.amount"),
    ({"object": {"amount": True}}, "data.object.amount"),
    ({"object": {"amount": -1}}, "data.object.amount"),
    ({"object": {"metadata": "ord_1"}}, "data.object.metadata"),
    ({"object": {"metadata": {"commerce_reference": 5}}}, "data.object.metadata"),
    ({"body": "{oops"}, ""),
    ({"body": "[1, 2]"}, ""),
    ({"body": "[" * 30000 + "]" * 30000}, ""),  # nested past the parser's recursion
])
def test_a_signed_event_of_an_unexpected_shape_is_400_and_changes_nothing(
    hooked: Client, shop: Platform, change: dict[str, Any], path: str
) -> None:
    """A 500 would make the provider resend it forever; it is refused for good instead."""
    order_id = _confirmed(hooked)
    event: dict[str, Any] = json.loads(_expired(order_id))
    if "object" in change:
        intent = event["data"]["object"]
        for key, value in change["object"].items():
            if key == "metadata" and isinstance(value, dict):
                intent["metadata"] = {**intent["metadata"], **value}
            else:
                intent[key] = value
    body = change.get("body") or json.dumps(
        {**event, **{k: v for k, v in change.items() if k in ("id", "data")}})
    refused = _deliver(hooked, body, sign(body, NEW))
    assert refused.status_code == 400, refused.text
    assert refused.json()["type"] == "/problems/invalid-notification"
    if path:
        assert [e["path"] for e in refused.json()["errors"]] == [path]
    assert len(refused.content) < 2000
    assert shop.orders.get(order_id).status is OrderStatus.CONFIRMED


def test_a_lapse_of_another_hold_that_names_our_order_is_ignored(
    hooked: Client, shop: Platform
) -> None:
    order_id = _confirmed(hooked)
    forgeries: list[dict[str, Any]] = [{"id": "pi_someone_else"}, {"amount": 1},
                                       {"currency": "usd"}]
    for n, forged in enumerate(forgeries):
        body = _expired(order_id, f"evt_{n}", **forged)
        answer = _deliver(hooked, body, sign(body, NEW))
        assert answer.json() == {"received": True, "outcome": "mismatched"}
    assert shop.orders.get(order_id).status is OrderStatus.CONFIRMED


def _refund_event(hooked: Client, order_id: str, amount: int, event_id: str = "evt_r") -> str:
    platform: Platform = hooked.app.state.gateway.platform
    platform.checkout.ship(order_id, carrier="DHL", tracking_number="T1")
    return json.dumps({"id": event_id, "object": "event", "type": "refund.created",
                       "data": {"object": {"id": f"re_{event_id}", "object": "refund",
                                           "amount": amount, "currency": "eur",
                                           "payment_intent": HOLDS[order_id],
                                           "metadata": {}}}})


def test_a_dashboard_refund_event_is_recorded_once(hooked: Client, shop: Platform) -> None:
    order_id = _confirmed(hooked)
    body = _refund_event(hooked, order_id, 250)
    first = _deliver(hooked, body, sign(body, NEW))
    assert first.json() == {"received": True, "outcome": "refunded"}
    payment = shop.orders.payment(shop.orders.get(order_id))
    assert payment is not None and payment.refunded.amount == 250


@pytest.mark.parametrize(("amount", "status", "outcome"), [
    (0, 400, None), (1251, 200, "mismatched")])
def test_a_refund_event_that_cannot_be_a_refund_of_the_payment_is_not_retried_forever(
    hooked: Client, shop: Platform, amount: int, status: int, outcome: str | None
) -> None:
    order_id = _confirmed(hooked)
    body = _refund_event(hooked, order_id, amount)
    answer = _deliver(hooked, body, sign(body, NEW))
    assert answer.status_code == status
    if outcome is not None:
        assert answer.json()["outcome"] == outcome
    payment = shop.orders.payment(shop.orders.get(order_id))
    assert payment is not None and payment.refunded.amount == 0

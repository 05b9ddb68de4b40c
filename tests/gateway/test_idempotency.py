"""``Idempotency-Key`` on every POST that moves money or stock: a retried request whose
answer was lost does its work once, and gets the first answer again."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from commerce_core import Platform
from commerce_core.testing import SandboxPaymentGateway
from commerce_core_gateway import GatewayConfig, create_app, parse_api_keys
from tests.gateway.conftest import ADMIN, ALICE, BOB, KEYS, Client, idem, order_body
from tests.gateway.test_http import assert_problem, place

_MINUTE = timedelta(minutes=1)


def _sandbox(shop: Platform) -> SandboxPaymentGateway:
    gateway = shop.payment_gateway
    assert isinstance(gateway, SandboxPaymentGateway)
    return gateway


def _shipped(client: Client) -> str:
    order = place(client, ("POT", 1))
    path = f"/v1/orders/{order['id']}"
    assert client.post(f"{path}/ship", key=ADMIN,
                       json={"carrier": "DHL", "tracking_number": "1"}).status_code == 200
    return path


def test_a_retried_refund_refunds_once_and_gets_the_first_answer(
    client: Client, shop: Platform
) -> None:
    path = _shipped(client)
    five = {"amount": {"amount": 500, "currency": "EUR"}, "reason": "dent"}
    first = client.post(f"{path}/refund", key=ADMIN, headers=idem("refund-1"), json=five)
    assert first.status_code == 200 and "Idempotent-Replayed" not in first.headers
    again = client.post(f"{path}/refund", key=ADMIN, headers=idem("refund-1"), json=five)
    assert (again.status_code, again.json()) == (200, first.json())
    assert again.headers["Idempotent-Replayed"] == "true"
    (auth,) = _sandbox(shop).authorizations()
    assert auth.refunded == 500
    other = client.post(f"{path}/refund", key=ADMIN, headers=idem("refund-1"),
                        json={**five, "reason": "scratch"})
    assert_problem(other, 422, "idempotency-key-reused")
    assert_problem(client.post(f"{path}/refund", key=ADMIN, json=five), 400,
                   "idempotency-key-required")
    assert _sandbox(shop).authorizations()[0].refunded == 500


def test_a_refused_refund_is_answered_the_same_when_retried(
    client: Client, shop: Platform
) -> None:
    path = _shipped(client)
    too_much = {"amount": {"amount": 3901, "currency": "EUR"}, "reason": "x"}
    first = client.post(f"{path}/refund", key=ADMIN, headers=idem("r"), json=too_much)
    assert_problem(first, 409, "refund-exceeds-captured")
    again = client.post(f"{path}/refund", key=ADMIN, headers=idem("r"), json=too_much)
    assert (again.status_code, again.json()) == (409, first.json())
    assert again.headers["Idempotent-Replayed"] == "true"


def test_a_refund_the_provider_could_not_make_frees_its_key_for_the_retry(
    client: Client, shop: Platform
) -> None:
    path = _shipped(client)
    body = {"reason": "returned"}
    _sandbox(shop).outage.add("refund")
    first = client.post(f"{path}/refund", key=ADMIN, headers=idem("r"), json=body)
    assert_problem(first, 503, "payment-unavailable")
    assert first.headers["Retry-After"]
    _sandbox(shop).outage.clear()
    retried = client.post(f"{path}/refund", key=ADMIN, headers=idem("r"), json=body)
    assert retried.status_code == 200 and retried.json()["status"] == "refunded"
    assert _sandbox(shop).authorizations()[0].refunded == 3900


def test_a_retried_stock_adjustment_adds_the_stock_once(client: Client, shop: Platform) -> None:
    body = {"warehouse": "BER", "delta": 5, "reason": "delivery"}
    first = client.post("/v1/inventory/MUG/adjustments", key=ADMIN, headers=idem("d-1"),
                        json=body)
    again = client.post("/v1/inventory/MUG/adjustments", key=ADMIN, headers=idem("d-1"),
                        json=body)
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json() and again.headers["Idempotent-Replayed"] == "true"
    assert shop.inventory.stock("MUG").on_hand == 15
    assert_problem(client.post("/v1/inventory/MUG/adjustments", key=ADMIN,
                               headers=idem("d-1"), json={**body, "delta": 6}),
                   422, "idempotency-key-reused")
    assert_problem(client.post("/v1/inventory/MUG/adjustments", key=ADMIN, json=body),
                   400, "idempotency-key-required")
    assert shop.inventory.stock("MUG").on_hand == 15


@pytest.mark.parametrize(("action", "body"), [
    ("ship", {"carrier": "DHL", "tracking_number": "1"}), ("cancel", None)])
def test_ship_and_cancel_replay_under_a_key_and_refuse_a_second_one_without(
    client: Client, action: str, body: dict[str, Any] | None
) -> None:
    order = place(client, ("MUG", 1))
    path = f"/v1/orders/{order['id']}/{action}"
    first = client.post(path, key=ADMIN, headers=idem("a"), json=body)
    again = client.post(path, key=ADMIN, headers=idem("a"), json=body)
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json() and again.headers["Idempotent-Replayed"] == "true"
    assert_problem(client.post(path, key=ADMIN, json=body), 409, "invalid-transition")


def test_a_request_still_running_under_the_key_is_409_in_use(
    client: Client, shop: Platform
) -> None:
    path = _shipped(client)
    # another request under this key has taken it and not finished yet
    shop.orders.claim_key("", "r", "another fingerprint", stale_after=_MINUTE)
    busy = client.post(f"{path}/refund", key=ADMIN, headers=idem("r"), json={"reason": "x"})
    assert_problem(busy, 422, "idempotency-key-reused")  # another request: reused
    _, claimed = shop.orders.claim_key("", "r2", _fingerprint_of_refund(client, path),
                                       stale_after=_MINUTE)
    assert claimed
    busy = client.post(f"{path}/refund", key=ADMIN, headers=idem("r2"), json={"reason": "x"})
    assert_problem(busy, 409, "idempotency-key-in-use")
    assert _sandbox(shop).authorizations()[0].refunded == 0


def test_a_request_whose_process_died_is_taken_over_after_the_lease(shop: Platform) -> None:
    eager = Client(create_app(shop, GatewayConfig(
        api_keys=parse_api_keys(KEYS), rate_limit="1000/second",
        checkout_rate_limit="1000/second", idempotency_lease=0)))
    path = _shipped(eager)
    _, claimed = shop.orders.claim_key("", "r", _fingerprint_of_refund(eager, path),
                                       stale_after=_MINUTE)
    assert claimed  # and its process died
    taken = eager.post(f"{path}/refund", key=ADMIN, headers=idem("r"), json={"reason": "x"})
    assert taken.status_code == 200 and taken.json()["status"] == "refunded"


def test_keys_are_scoped_per_principal(client: Client, shop: Platform) -> None:
    body = {"warehouse": "BER", "delta": 1, "reason": "count"}
    assert client.post("/v1/inventory/MUG/adjustments", key=ADMIN, headers=idem("same"),
                       json=body).status_code == 201
    placed = client.post("/v1/orders", key=ALICE, headers=idem("same"),
                         json=order_body(("MUG", 1)))
    assert placed.status_code == 201  # the admin's key is not alice's
    bob = client.post("/v1/orders", key=BOB, headers=idem("same"), json=order_body(("MUG", 1)))
    assert bob.status_code == 201 and bob.json()["id"] != placed.json()["id"]


def test_a_checkout_the_provider_could_not_take_is_tried_again_under_its_key(
    client: Client, shop: Platform
) -> None:
    """The 503 says "retry after": the retry under the same key is a new attempt, not the
    same 503 replayed forever; then the key replays the order it made."""
    _sandbox(shop).outage.add("authorize")
    body = order_body(("MUG", 2))
    first = client.post("/v1/orders", key=ALICE, headers=idem("buy"), json=body)
    problem = assert_problem(first, 503, "payment-unavailable")
    assert first.headers["Retry-After"] and problem["order_id"]
    _sandbox(shop).outage.clear()
    retried = client.post("/v1/orders", key=ALICE, headers=idem("buy"), json=body)
    assert retried.status_code == 201 and retried.json()["id"] != problem["order_id"]
    assert "Idempotent-Replayed" not in retried.headers  # a new attempt, not a replay
    replayed = client.post("/v1/orders", key=ALICE, headers=idem("buy"), json=body)
    assert (replayed.status_code, replayed.json()) == (201, retried.json())
    assert replayed.headers["Idempotent-Replayed"] == "true"
    assert shop.inventory.availability(["MUG"]) == {"MUG": 8}
    assert [a.status for a in _sandbox(shop).authorizations()] == ["authorized"]


def _fingerprint_of_refund(client: Client, path: str) -> str:
    """What the gateway computes for ``POST {path}/refund {"reason": "x"}``."""
    from commerce_core_gateway.app import _request_fingerprint  # noqa: PLC0415
    from commerce_core_gateway.routing import Call  # noqa: PLC0415

    order_id = path.rsplit("/", 1)[-1]
    app: Any = client.app
    return _request_fingerprint("refund_order", Call(
        app.state.gateway.platform, None, {"id": order_id}, {}, None, {},
        raw=b'{"reason": "x"}'))


def test_a_cancel_whose_void_the_provider_cannot_take_is_503_and_the_retry_finishes_it(
    client: Client, shop: Platform
) -> None:
    order = place(client, ("MUG", 1))
    path = f"/v1/orders/{order['id']}/cancel"
    _sandbox(shop).outage.add("void")
    first = client.post(path, key=ALICE, headers=idem("c"))
    assert_problem(first, 503, "payment-unavailable")
    _sandbox(shop).outage.clear()
    retried = client.post(path, key=ALICE, headers=idem("c"))
    assert retried.status_code == 200 and "Idempotent-Replayed" not in retried.headers
    assert retried.json()["payment"]["status"] == "voided"
    assert [a.status for a in _sandbox(shop).authorizations()] == ["voided"]


def test_a_placed_order_is_answered_from_the_confirming_write(
    client: Client, shop: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The answer to a place-order request is stored with the confirmed order (no read of
    the payment, no write of the answer after it) and a retry gets it byte for byte."""
    calls: list[str] = []
    for name in ("save_response", "payment", "payments"):
        original = getattr(shop.orders, name)

        def counted(*args: Any, _name: str = name, _original: Any = original,
                    **kwargs: Any) -> Any:
            calls.append(_name)
            return _original(*args, **kwargs)

        monkeypatch.setattr(shop.orders, name, counted)
    body = order_body(("MUG", 2))
    first = client.post("/v1/orders", key=ALICE, headers=idem("o-1"), json=body)
    assert first.status_code == 201 and first.json()["payment"]["status"] == "authorized"
    assert calls == []
    record = shop.orders.idempotency_record("alice", "o-1")
    assert record is not None
    assert (record.response_status, record.response_body) == (201, first.text)
    again = client.post("/v1/orders", key=ALICE, headers=idem("o-1"), json=body)
    assert (again.status_code, again.text) == (201, first.text)
    assert again.headers["Idempotent-Replayed"] == "true"
    # a refusal is stored by the gateway as before
    declined = client.post("/v1/orders", key=ALICE, headers=idem("o-2"),
                           json=order_body(("MUG", 1), token="tok_declined"))
    assert_problem(declined, 402, "payment-declined")
    assert calls == ["save_response"]
    stored = shop.orders.idempotency_record("alice", "o-2")
    assert stored is not None and stored.response_body == declined.text

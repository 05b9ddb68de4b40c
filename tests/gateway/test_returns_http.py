"""Returns over HTTP (the contract's second edition): the owner or an admin asks, an admin
receives, refunds or rejects; problems for everything else, nothing changed."""

from __future__ import annotations

from typing import Any

from commerce_core import Platform
from tests.gateway.conftest import ADMIN, ALICE, BOB, Client
from tests.gateway.test_http import assert_problem, place


def _shipped(client: Client, *lines: tuple[str, int]) -> str:
    order = place(client, *lines)
    shipped = client.post(f"/v1/orders/{order['id']}/ship", key=ADMIN,
                          json={"carrier": "DHL", "tracking_number": "P1"})
    assert shipped.status_code == 200, shipped.text
    return str(order["id"])


def _ask(client: Client, order_id: str, *lines: tuple[str, int], who: str = ALICE,
         reason: str = "too small") -> Any:
    return client.post(f"/v1/orders/{order_id}/returns", key=who, json={
        "lines": [{"sku": sku, "quantity": n} for sku, n in lines], "reason": reason})


def test_a_return_goes_from_requested_to_refunded(client: Client, shop: Platform) -> None:
    order_id = _shipped(client, ("MUG", 2), ("POT", 1))
    asked = _ask(client, order_id, ("MUG", 1))
    assert asked.status_code == 201, asked.text
    ret = asked.json()
    assert (ret["status"], ret["order_id"], ret["refund"], ret["reason"]) == (
        "requested", order_id, None, "too small")
    assert ret["lines"] == [{"sku": "MUG", "quantity": 1}]
    assert client.get(f"/v1/returns/{ret['id']}", key=ALICE).json() == ret
    assert client.get(f"/v1/orders/{order_id}/returns", key=ALICE).json() == {"items": [ret]}
    on_hand = shop.inventory.stock("MUG").on_hand

    received = client.post(f"/v1/returns/{ret['id']}/receive", key=ADMIN,
                           json={"warehouse": "BER", "restock": True})
    assert received.status_code == 200, received.text
    assert (received.json()["status"], received.json()["warehouse"],
            received.json()["restock"]) == ("received", "BER", True)
    assert shop.inventory.stock("MUG").on_hand == on_hand + 1
    (movement, *_) = shop.inventory.movements("MUG")
    assert (movement.reason, movement.reference, movement.delta) == ("return", ret["id"], 1)

    refund = client.post(f"/v1/returns/{ret['id']}/refund", key=ADMIN,
                         headers={"Idempotency-Key": "rf-1"}, json={})
    assert refund.status_code == 200, refund.text
    body = refund.json()
    assert (body["status"], body["refund"]) == ("refunded", {"amount": 1250, "currency": "EUR"})
    assert body["shipping_refund"] == {"amount": 0, "currency": "EUR"}
    again = client.post(f"/v1/returns/{ret['id']}/refund", key=ADMIN,
                        headers={"Idempotency-Key": "rf-1"}, json={})
    assert again.json() == body and again.headers["Idempotent-Replayed"] == "true"
    order = client.get(f"/v1/orders/{order_id}", key=ALICE).json()
    assert order["payment"]["refunded"] == {"amount": 1250, "currency": "EUR"}
    assert [line["returned_quantity"] for line in order["lines"]] == [1, 0]

    # the rest, without a body at all: refunded in full, the order is refunded
    rest = _ask(client, order_id, ("MUG", 1), ("POT", 1), who=ADMIN).json()
    client.post(f"/v1/returns/{rest['id']}/receive", key=ADMIN,
                json={"warehouse": "BER", "restock": False})
    done = client.post(f"/v1/returns/{rest['id']}/refund", key=ADMIN,
                       headers={"Idempotency-Key": "rf-2"})
    assert done.status_code == 200, done.text
    assert done.json()["refund"] == {"amount": 1250 + 3900, "currency": "EUR"}
    assert client.get(f"/v1/orders/{order_id}", key=ADMIN).json()["status"] == "refunded"


def test_what_is_refused_is_a_problem_and_changes_nothing(client: Client) -> None:
    order_id = _shipped(client, ("MUG", 2))
    ret = _ask(client, order_id, ("MUG", 1)).json()
    before = client.get(f"/v1/orders/{order_id}", key=ADMIN).json()
    assert_problem(_ask(client, order_id, ("MUG", 2)), 409, "return-exceeds-shipped")
    assert_problem(_ask(client, order_id, ("MUG", 1), who=BOB), 404, "not-found")
    assert_problem(client.get(f"/v1/returns/{ret['id']}", key=BOB), 404, "not-found")
    assert_problem(client.get(f"/v1/orders/{order_id}/returns", key=BOB), 404, "not-found")
    for path in ("receive", "refund", "reject"):  # admins only
        assert_problem(client.post(f"/v1/returns/{ret['id']}/{path}", key=ALICE,
                                   headers={"Idempotency-Key": "x"},
                                   json={"warehouse": "BER", "restock": True}),
                       403, "forbidden")
    assert_problem(client.post(f"/v1/returns/{ret['id']}/refund", key=ADMIN, json={}),
                   400, "idempotency-key-required")
    assert_problem(client.post(f"/v1/returns/{ret['id']}/refund", key=ADMIN,
                               headers={"Idempotency-Key": "r0"}, json={}),
                   409, "invalid-transition")  # not received yet
    bad: list[dict[str, Any]] = [
        {"lines": [], "reason": "x"}, {"lines": [{"sku": "MUG", "quantity": 0}], "reason": "x"},
        {"lines": [{"sku": "MUG", "quantity": 1}], "reason": " "},
        {"lines": [{"sku": "MUG", "quantity": 1}], "reason": "x" * 501},
        {"lines": [{"sku": "MUG", "quantity": 1}]}, {"reason": "x"}]
    for body in bad:
        response = client.post(f"/v1/orders/{order_id}/returns", key=ALICE, json=body)
        assert_problem(response, 422, "invalid-input")
    receipts: list[dict[str, Any]] = [
        {"warehouse": "NOPE", "restock": True}, {"warehouse": "BER"},
        {"warehouse": "BER", "restock": "yes"}, {"warehouse": "a b", "restock": True}]
    for receipt in receipts:
        assert_problem(client.post(f"/v1/returns/{ret['id']}/receive", key=ADMIN,
                                   json=receipt),
                       422, "invalid-input")
    for unknown in ["ret_nope_1", "nope", f"ret_{order_id}_7"]:
        assert_problem(client.get(f"/v1/returns/{unknown}", key=ADMIN), 404, "not-found")
        assert_problem(client.post(f"/v1/returns/{unknown}/reject", key=ADMIN), 404,
                       "not-found")
    assert client.get(f"/v1/orders/{order_id}", key=ADMIN).json() == before
    assert client.get(f"/v1/returns/{ret['id']}", key=ADMIN).json() == ret

    rejected = client.post(f"/v1/returns/{ret['id']}/reject", key=ADMIN,
                           json={"reason": "worn"})
    assert rejected.status_code == 200, rejected.text
    assert (rejected.json()["status"], rejected.json()["rejection_reason"]) == ("rejected",
                                                                                "worn")
    assert_problem(client.post(f"/v1/returns/{ret['id']}/receive", key=ADMIN,
                               json={"warehouse": "BER", "restock": True}),
                   409, "invalid-transition")


def test_the_document_describes_returns(client: Client) -> None:
    document = client.get("/openapi.json").json()
    paths = document["paths"]
    assert {"/v1/orders/{id}/returns", "/v1/returns/{id}", "/v1/returns/{id}/receive",
            "/v1/returns/{id}/refund", "/v1/returns/{id}/reject"} <= set(paths)
    refund = paths["/v1/returns/{id}/refund"]["post"]
    assert refund["requestBody"]["required"] is False
    assert any(p["name"] == "Idempotency-Key" and p["required"] for p in refund["parameters"])
    schemas = document["components"]["schemas"]
    assert {"id", "order_id", "status", "lines", "reason", "refund"} <= set(
        schemas["ReturnOut"]["properties"])
    assert "returned_quantity" in schemas["OrderLineOut"]["properties"]

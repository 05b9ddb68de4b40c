"""Shipping in parts and cancelling the rest over HTTP (the contract's second edition)."""

from __future__ import annotations

from typing import Any

from commerce_core import Platform
from tests.gateway.conftest import ADMIN, ALICE, BOB, Client
from tests.gateway.test_http import assert_problem, place


def _ship(client: Client, order_id: str, **body: Any) -> Any:
    return client.post(f"/v1/orders/{order_id}/ship", key=ADMIN,
                       json={"carrier": "DHL", "tracking_number": "P1", **body})


def test_an_order_ships_in_parcels_and_each_is_listed(client: Client, shop: Platform) -> None:
    order = place(client, ("MUG", 3), ("POT", 1))
    first = _ship(client, str(order["id"]), lines=[{"sku": "MUG", "quantity": 2}],
                  warehouse="BER")
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["status"] == "partially_shipped"
    assert [(line["shipped_quantity"], line["cancelled_quantity"]) for line in body["lines"]] \
        == [(2, 0), (0, 0)]
    (parcel,) = body["shipments"]
    assert parcel["id"].startswith("shp_") and parcel["warehouse"] == "BER"
    assert parcel["lines"] == [{"sku": "MUG", "quantity": 2}]
    assert body["shipment"] == parcel  # the first edition's field shows the first parcel
    assert body["payment"]["captured"] == body["total"]
    rest = _ship(client, str(order["id"]), tracking_number="P2").json()
    assert rest["status"] == "shipped"
    assert [p["lines"] for p in rest["shipments"]] == [
        [{"sku": "MUG", "quantity": 2}], [{"sku": "MUG", "quantity": 1},
                                          {"sku": "POT", "quantity": 1}]]
    assert rest["shipment"] == parcel
    assert shop.inventory.stock("MUG").on_hand == 7


def test_a_parcel_of_more_than_is_left_is_409_with_nothing_changed(client: Client) -> None:
    order = place(client, ("MUG", 2))
    before = client.get(f"/v1/orders/{order['id']}", key=ADMIN).json()
    problem = assert_problem(_ship(client, str(order["id"]),
                                   lines=[{"sku": "MUG", "quantity": 3}]),
                             409, "shipment-exceeds-order")
    assert "2 left" in str(problem["detail"])
    assert_problem(_ship(client, str(order["id"]), lines=[{"sku": "POT", "quantity": 1}]),
                   409, "shipment-exceeds-order")
    assert_problem(_ship(client, str(order["id"]), lines=[{"sku": "MUG", "quantity": 1}],
                         warehouse="AMS"), 409, "shipment-exceeds-order")
    bodies: list[dict[str, Any]] = [
        {"lines": []}, {"lines": [{"sku": "MUG", "quantity": 0}]}, {"lines": [{"sku": "MUG"}]},
        {"warehouse": "a b"}, {"lines": "MUG"}]
    for bad in bodies:
        assert _ship(client, str(order["id"]), **bad).status_code == 422, bad
    assert client.get(f"/v1/orders/{order['id']}", key=ADMIN).json() == before


def test_the_owner_cancels_what_has_not_shipped_and_gets_its_share_back(
    client: Client, shop: Platform
) -> None:
    order = place(client, ("MUG", 2), ("POT", 1))
    _ship(client, str(order["id"]), lines=[{"sku": "MUG", "quantity": 2}])
    assert_problem(client.post(f"/v1/orders/{order['id']}/cancel", key=BOB), 404, "not-found")
    cancelled = client.post(f"/v1/orders/{order['id']}/cancel", key=ALICE)
    assert cancelled.status_code == 200, cancelled.text
    body = cancelled.json()
    assert body["status"] == "shipped"
    assert [(line["shipped_quantity"], line["cancelled_quantity"]) for line in body["lines"]] \
        == [(2, 0), (0, 1)]
    assert body["payment"]["refunded"] == {"amount": 3900, "currency": "EUR"}
    assert shop.inventory.stock("POT").reserved == 0
    assert_problem(client.post(f"/v1/orders/{order['id']}/cancel", key=ALICE), 409,
                   "invalid-transition")
    listed = client.get("/v1/orders", key=ALICE, params={"status": "shipped"}).json()
    assert [o["id"] for o in listed["items"]] == [order["id"]]


def test_the_document_describes_parcels(client: Client) -> None:
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    assert {"lines", "warehouse"} <= set(schemas["ShipBody"]["properties"])
    assert {"shipments", "shipment"} <= set(schemas["OrderOut"]["properties"])
    assert {"shipped_quantity", "cancelled_quantity"} <= set(
        schemas["OrderLineOut"]["properties"])


def test_a_parcel_posted_again_without_a_key_ships_once(client: Client, shop: Platform) -> None:
    order = place(client, ("MUG", 3))
    parcel = {"tracking_number": "PARCEL-1", "lines": [{"sku": "MUG", "quantity": 1}]}
    first = _ship(client, str(order["id"]), **parcel)
    again = _ship(client, str(order["id"]), **parcel)  # a retry after a lost answer
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json() and len(again.json()["shipments"]) == 1
    assert shop.inventory.stock("MUG").on_hand == 9
    assert_problem(_ship(client, str(order["id"]), tracking_number="PARCEL-1",
                         lines=[{"sku": "MUG", "quantity": 2}]), 409, "duplicate-parcel")

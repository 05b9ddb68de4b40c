"""The HTTP contract, route by route and error by error, in process."""

from __future__ import annotations

from datetime import timedelta

import pytest

from commerce_core import OrderItem, PlaceOrder, Platform, RetryPolicy
from commerce_core.orders import Address
from commerce_core_gateway import GatewayConfig, create_app, parse_api_keys
from tests.gateway.conftest import (
    ADMIN,
    ALICE,
    BOB,
    KEYS,
    Client,
    idem,
    make_platform,
    order_body,
    seed_shop,
)

PROBLEM = "application/problem+json"


def place(client: Client, *lines: tuple[str, int], key: str = "k1", token: str = "tok_visa",
          who: str = ALICE) -> dict[str, object]:
    response = client.post("/v1/orders", key=who, headers={"Idempotency-Key": key},
                           json=order_body(*lines, token=token))
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def assert_problem(response: object, status: int, kind: str) -> dict[str, object]:
    import httpx  # noqa: PLC0415 - typing only

    assert isinstance(response, httpx.Response)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["type"] == f"/problems/{kind}" and body["status"] == status
    assert body["title"] and body["detail"]
    return body  # type: ignore[no-any-return]


# -- health, discovery ----------------------------------------------------------------------

def test_health_and_readiness(client: Client) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ready"}


def test_unknown_routes_and_methods_are_problems(client: Client) -> None:
    assert_problem(client.get("/v1/nothing"), 404, "not-found")
    assert_problem(client.request("DELETE", "/v1/products"), 405, "method-not-allowed")


def test_the_openapi_document_covers_the_contract(client: Client) -> None:
    document = client.get("/openapi.json").json()
    assert document["openapi"].startswith("3.1")
    operations = {(m.upper(), p) for p, ops in document["paths"].items() for m in ops}
    assert operations == {
        ("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/v1/products"),
        ("GET", "/v1/products/{sku}"), ("PUT", "/v1/products/{sku}"),
        ("PUT", "/v1/warehouses/{code}"), ("GET", "/v1/inventory/{sku}"),
        ("POST", "/v1/inventory/{sku}/adjustments"), ("POST", "/v1/orders"),
        ("GET", "/v1/orders"), ("GET", "/v1/orders/{id}"), ("POST", "/v1/orders/{id}/cancel"),
        ("POST", "/v1/orders/{id}/ship"), ("POST", "/v1/orders/{id}/deliver"),
        ("POST", "/v1/orders/{id}/refund"), ("POST", "/v1/webhooks/payments/{provider}"),
        # the second edition: pricing
        ("POST", "/v1/quotes"), ("PATCH", "/v1/orders/{id}/metadata"),
        ("GET", "/v1/shipping-options"), ("PUT", "/v1/shipping-options/{code}"),
        ("GET", "/v1/tax-rates"), ("PUT", "/v1/tax-rates/{country}"),
        ("GET", "/v1/vouchers"), ("GET", "/v1/vouchers/{code}"), ("PUT", "/v1/vouchers/{code}"),
        # returns
        ("POST", "/v1/orders/{id}/returns"), ("GET", "/v1/orders/{id}/returns"),
        ("GET", "/v1/returns/{id}"), ("POST", "/v1/returns/{id}/receive"),
        ("POST", "/v1/returns/{id}/refund"), ("POST", "/v1/returns/{id}/reject"),
        # outbound webhooks
        ("GET", "/v1/webhook-endpoints"), ("PUT", "/v1/webhook-endpoints/{id}"),
        ("GET", "/v1/webhook-endpoints/{id}"), ("GET", "/v1/webhook-endpoints/{id}/deliveries"),
        ("POST", "/v1/webhook-endpoints/{id}/replay"),
    }
    place_order = document["paths"]["/v1/orders"]["post"]
    assert {"201", "400", "401", "402", "403", "409", "413", "415", "422", "429", "503"} <= set(
        place_order["responses"])
    line = document["components"]["schemas"]["LineBody"]
    assert line["properties"]["quantity"] == {"type": "integer", "minimum": 1, "maximum": 1000}
    assert line["additionalProperties"] is False


# -- catalogue and stock --------------------------------------------------------------------

def test_anyone_browses_active_products_with_availability(client: Client) -> None:
    first = client.get("/v1/products", params={"limit": 2})
    assert first.status_code == 200
    page = first.json()
    assert [p["sku"] for p in page["items"]] == ["MUG", "POT"]
    assert page["items"][0] == {"sku": "MUG", "name": "Mug", "active": True, "available": 10,
                                "price": {"amount": 1250, "currency": "EUR"}}
    rest = client.get("/v1/products", params={"cursor": page["next_cursor"]}).json()
    assert [p["sku"] for p in rest["items"]] == ["USD"] and rest["next_cursor"] is None
    assert client.get("/v1/products/POT").json()["available"] == 2
    assert_problem(client.get("/v1/products/NOPE"), 404, "not-found")
    assert_problem(client.get("/v1/products/OLD"), 404, "not-found")  # inactive: hidden
    assert client.get("/v1/products/OLD", key=ADMIN).json()["active"] is False


@pytest.mark.parametrize("query", ["limit=0", "limit=101", "limit=x", "limit=1.5", "cursor=",
                                   "sort=name", "=x"])
def test_bad_query_parameters_are_422(client: Client, query: str) -> None:
    assert_problem(client.get(f"/v1/products?{query}"), 422, "invalid-input")


def test_admins_create_then_update_products_and_warehouses(client: Client) -> None:
    body = {"name": "Cup", "price": {"amount": 650, "currency": "EUR"}}
    created = client.put("/v1/products/CUP-1", key=ADMIN, json=body)
    assert created.status_code == 201
    assert created.json() == {"sku": "CUP-1", "name": "Cup", "active": True, "available": 0,
                              "price": {"amount": 650, "currency": "EUR"}}
    updated = client.put("/v1/products/CUP-1", key=ADMIN, json={**body, "active": False})
    assert updated.status_code == 200 and updated.json()["active"] is False
    assert client.put("/v1/warehouses/AMS", key=ADMIN, json={"name": "Ams"}).status_code == 201
    again = client.put("/v1/warehouses/AMS", key=ADMIN, json={"name": "Amsterdam"})
    assert again.status_code == 200 and again.json() == {"code": "AMS", "name": "Amsterdam"}


def test_authentication_and_authorization_on_admin_routes(client: Client) -> None:
    body = {"name": "Cup", "price": {"amount": 650, "currency": "EUR"}}
    missing = assert_problem(client.put("/v1/products/CUP", json=body), 401, "unauthenticated")
    assert missing
    response = client.put("/v1/products/CUP", json=body)
    assert response.headers["www-authenticate"] == "Bearer"
    bad = client.put("/v1/products/CUP", key="wrong", json=body)
    assert_problem(bad, 401, "unauthenticated")
    assert bad.headers["www-authenticate"] == "Bearer"
    assert_problem(client.put("/v1/products/CUP", key=ALICE, json=body), 403, "forbidden")
    assert_problem(client.get("/v1/inventory/MUG", key=ALICE), 403, "forbidden")
    assert_problem(client.get("/v1/products/CUP", key=ADMIN), 404, "not-found")  # unchanged


@pytest.mark.parametrize(
    ("body", "paths"),
    [
        ({"name": "", "price": {"amount": -1, "currency": "eur"}},
         {"name", "price.amount", "price.currency"}),
        ({"name": "Cup"}, {"price"}),
        ({"name": "Cup", "price": {"amount": 1, "currency": "EUR"}, "colour": "red"}, {"colour"}),
        ({"name": 5, "price": {"amount": "1", "currency": "EUR"}}, {"name", "price.amount"}),
        ({"name": "Cup", "price": {"amount": 1.5, "currency": "EUR"}}, {"price.amount"}),
        ({"name": "Cup", "price": {"amount": 1, "currency": "EUR"}, "active": 1}, {"active"}),
        ([1, 2], {""}),
    ],
)
def test_invalid_bodies_are_422_with_every_path_and_change_nothing(
    client: Client, shop: Platform, body: object, paths: set[str]
) -> None:
    problem = assert_problem(client.put("/v1/products/CUP", key=ADMIN, json=body), 422,
                             "invalid-input")
    assert {e["path"] for e in problem["errors"]} == paths  # type: ignore[attr-defined]
    assert shop.inventory.get_products(["CUP"]) == {}


def test_malformed_json_is_400_and_wrong_media_type_is_415(client: Client) -> None:
    bad = client.put("/v1/products/CUP", key=ADMIN, content=b"{not json",
                     headers={"Content-Type": "application/json"})
    assert_problem(bad, 400, "malformed-json")
    text = client.put("/v1/products/CUP", key=ADMIN, content=b"{}",
                      headers={"Content-Type": "text/plain"})
    assert_problem(text, 415, "unsupported-media-type")
    none = client.put("/v1/products/CUP", key=ADMIN, content=b"{}")
    assert_problem(none, 415, "unsupported-media-type")


@pytest.mark.parametrize("raw", [b"[" * 30000 + b"]" * 30000, b"\xff\xfe", b"NaN", b'"x"',
                                 b"", b"{\"name\": 1e999}"])
def test_hostile_json_is_a_problem_never_a_crash(client: Client, raw: bytes) -> None:
    response = client.put("/v1/products/CUP", key=ADMIN, content=raw,
                          headers={"Content-Type": "application/json"})
    assert response.status_code in (400, 422)
    assert response.headers["content-type"] == PROBLEM


def test_a_body_over_64_kib_is_413(client: Client) -> None:
    big = {"name": "x" * (65 * 1024), "price": {"amount": 1, "currency": "EUR"}}
    assert_problem(client.put("/v1/products/CUP", key=ADMIN, json=big), 413, "body-too-large")


def test_stock_adjustments_and_their_conflicts(client: Client, shop: Platform) -> None:
    ok = client.post("/v1/inventory/MUG/adjustments", key=ADMIN, headers=idem("a1"),
                     json={"warehouse": "BER", "delta": -3, "reason": "broken"})
    assert ok.status_code == 201
    assert ok.json() == {"sku": "MUG", "warehouse": "BER", "on_hand": 7, "reserved": 0,
                         "available": 7}
    place(client, ("MUG", 5))
    below = client.post("/v1/inventory/MUG/adjustments", key=ADMIN, headers=idem("a2"),
                        json={"warehouse": "BER", "delta": -3, "reason": "count"})
    assert_problem(below, 409, "stock-conflict")
    unknown = client.post("/v1/inventory/MUG/adjustments", key=ADMIN, headers=idem("a3"),
                          json={"warehouse": "XXX", "delta": 1, "reason": "r"})
    assert assert_problem(unknown, 422, "invalid-input")["errors"] == [
        {"path": "warehouse", "message": "unknown warehouse 'XXX'"}]
    zero = client.post("/v1/inventory/MUG/adjustments", key=ADMIN, headers=idem("a4"),
                       json={"warehouse": "BER", "delta": 0, "reason": "r"})
    assert_problem(zero, 422, "invalid-input")
    missing = client.post("/v1/inventory/NOPE/adjustments", key=ADMIN, headers=idem("a5"),
                          json={"warehouse": "BER", "delta": 1, "reason": "r"})
    assert_problem(missing, 404, "not-found")
    inventory = client.get("/v1/inventory/MUG", key=ADMIN).json()
    assert inventory == {"sku": "MUG", "on_hand": 7, "reserved": 5, "available": 2, "levels": [
        {"warehouse": "BER", "on_hand": 7, "reserved": 5, "available": 2}]}
    assert shop.inventory.stock("MUG").on_hand == 7


# -- placing orders -------------------------------------------------------------------------

def test_a_customer_places_an_order(client: Client) -> None:
    order = place(client, ("MUG", 2), ("POT", 1))
    assert order["status"] == "confirmed" and order["customer_id"] == "alice"
    assert order["total"] == {"amount": 2 * 1250 + 3900, "currency": "EUR"}
    assert order["payment"]["status"] == "authorized"  # type: ignore[index]
    assert [h["status"] for h in order["history"]] == ["pending", "confirmed"]  # type: ignore[attr-defined]
    assert order["shipment"] is None and order["failure_reason"] is None
    assert str(order["created_at"]).endswith("Z")


def test_the_idempotency_key_is_required(client: Client) -> None:
    response = client.post("/v1/orders", key=ALICE, json=order_body(("MUG", 1)))
    assert_problem(response, 400, "idempotency-key-required")
    long_key = client.post("/v1/orders", key=ALICE, json=order_body(("MUG", 1)),
                           headers={"Idempotency-Key": "k" * 256})
    assert_problem(long_key, 400, "idempotency-key-required")


def test_a_replay_returns_the_same_status_and_body(client: Client, shop: Platform) -> None:
    first = client.post("/v1/orders", key=ALICE, headers={"Idempotency-Key": "same"},
                        json=order_body(("MUG", 2)))
    again = client.post("/v1/orders", key=ALICE, headers={"Idempotency-Key": "same"},
                        json=order_body(("MUG", 2)))
    assert (again.status_code, again.json()) == (first.status_code, first.json())
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert shop.inventory.availability(["MUG"]) == {"MUG": 8}
    other = client.post("/v1/orders", key=ALICE, headers={"Idempotency-Key": "same"},
                        json=order_body(("MUG", 3)))
    assert_problem(other, 422, "idempotency-key-reused")
    bobs = client.post("/v1/orders", key=BOB, headers={"Idempotency-Key": "same"},
                       json=order_body(("MUG", 3)))
    assert bobs.status_code == 201  # keys are scoped per principal


def test_a_failed_order_replays_its_problem_too(client: Client) -> None:
    first = client.post("/v1/orders", key=ALICE, headers={"Idempotency-Key": "short"},
                        json=order_body(("POT", 3)))
    body = assert_problem(first, 409, "insufficient-stock")
    assert body["shortages"] == [{"sku": "POT", "requested": 3, "available": 2}]
    assert str(body["order_id"]).startswith("ord_")
    again = client.post("/v1/orders", key=ALICE, headers={"Idempotency-Key": "short"},
                        json=order_body(("POT", 3)))
    assert again.status_code == 409 and again.json() == body
    assert again.headers["idempotent-replayed"] == "true"
    failed = client.get(f"/v1/orders/{body['order_id']}", key=ALICE).json()
    assert (failed["status"], failed["failure_reason"]) == ("failed", "insufficient-stock")


def test_a_duplicate_while_the_first_is_running_is_409(client: Client, shop: Platform) -> None:
    class Crash(BaseException):
        pass

    def crash(step: str, _: object) -> None:
        if step == "stock_reserved":
            raise Crash

    crashing = Platform.from_adapters(
        order_store=shop.order_store, inventory_store=shop.inventory_store,
        payment_gateway=shop.payment_gateway, on_step=crash, retry=RetryPolicy.immediate())
    command = PlaceOrder(customer_id="alice", lines=[OrderItem("MUG", 1)],
                         payment_token="tok_visa",
                         shipping_address=Address("Alice", "Main St 1", "Berlin", "10115", "DE"))
    with pytest.raises(Crash):
        crashing.checkout.place_order(command, idempotency_key="busy")
    busy = client.post("/v1/orders", key=ALICE, headers={"Idempotency-Key": "busy"},
                       json=order_body(("MUG", 1)))
    assert_problem(busy, 409, "idempotency-key-in-use")
    shop.checkout.recover(grace=timedelta(0))
    done = client.post("/v1/orders", key=ALICE, headers={"Idempotency-Key": "busy"},
                       json=order_body(("MUG", 1)))
    assert done.status_code == 201 and done.headers["idempotent-replayed"] == "true"


@pytest.mark.parametrize(
    ("token", "status", "kind"),
    [("tok_declined", 402, "payment-declined"), ("tok_insufficient_funds", 402,
                                                  "payment-declined"),
     ("tok_timeout", 503, "payment-unavailable")],
)
def test_payment_failures_fail_the_order(client: Client, shop: Platform, token: str,
                                         status: int, kind: str) -> None:
    response = client.post("/v1/orders", key=ALICE, headers={"Idempotency-Key": token},
                           json=order_body(("MUG", 1), token=token))
    body = assert_problem(response, status, kind)
    if status == 503:
        assert response.headers["retry-after"].isdigit()
    assert shop.orders.get(str(body["order_id"])).status == "failed"
    assert shop.inventory.availability(["MUG"]) == {"MUG": 10}


def test_flaky_payments_are_retried(client: Client) -> None:
    assert place(client, ("MUG", 1), token="tok_flaky")["status"] == "confirmed"


@pytest.mark.parametrize(
    ("lines", "path", "kind"),
    [((("NOPE", 1),), "lines[0].sku", "invalid-input"),
     ((("OLD", 1),), "lines[0].sku", "invalid-input"),
     ((("MUG", 1), ("USD", 1)), "lines[1].sku", "currency-mismatch"),
     ((("MUG", 0),), "lines[0].quantity", "invalid-input"),
     ((("MUG", 1001),), "lines[0].quantity", "invalid-input"),
     ((), "lines", "invalid-input"),
     ((("MUG", 1), ("MUG", 2)), "lines[1].sku", "invalid-input")],
)
def test_order_lines_are_validated(client: Client, shop: Platform,
                                   lines: tuple[tuple[str, int], ...], path: str,
                                   kind: str) -> None:
    response = client.post("/v1/orders", key=ALICE, headers={"Idempotency-Key": "v"},
                           json=order_body(*lines))
    problem = assert_problem(response, 422, kind)
    assert path in [e["path"] for e in problem["errors"]]  # type: ignore[attr-defined]
    assert shop.orders.list().items == []


def test_customers_cannot_set_server_owned_fields(client: Client) -> None:
    body = {**order_body(("MUG", 1)), "status": "shipped", "customer_id": "bob"}
    problem = assert_problem(client.post("/v1/orders", key=ALICE, json=body,
                                         headers={"Idempotency-Key": "x"}), 422, "invalid-input")
    assert {e["path"] for e in problem["errors"]} == {"status", "customer_id"}  # type: ignore[attr-defined]


def test_only_customers_place_orders(client: Client) -> None:
    response = client.post("/v1/orders", key=ADMIN, headers={"Idempotency-Key": "a"},
                           json=order_body(("MUG", 1)))
    assert_problem(response, 403, "forbidden")
    assert_problem(client.post("/v1/orders", headers={"Idempotency-Key": "a"},
                               json=order_body(("MUG", 1))), 401, "unauthenticated")


# -- reading and working orders -------------------------------------------------------------

def test_customers_see_only_their_own_orders(client: Client) -> None:
    alices = place(client, ("MUG", 1), key="a1")
    place(client, ("MUG", 1), key="b1", who=BOB)
    mine = client.get("/v1/orders", key=ALICE).json()
    assert [o["id"] for o in mine["items"]] == [alices["id"]]
    everyone = client.get("/v1/orders", key=ADMIN).json()
    assert len(everyone["items"]) == 2
    just_bob = client.get("/v1/orders", key=ADMIN, params={"customer_id": "bob"}).json()
    assert [o["customer_id"] for o in just_bob["items"]] == ["bob"]
    theirs = client.get(f"/v1/orders/{alices['id']}", key=BOB)
    nothing = client.get("/v1/orders/ord_doesnotexist", key=BOB)
    assert_problem(theirs, 404, "not-found")
    assert_problem(nothing, 404, "not-found")
    assert theirs.json()["title"] == nothing.json()["title"]
    assert_problem(client.post(f"/v1/orders/{alices['id']}/cancel", key=BOB), 404, "not-found")
    assert client.get(f"/v1/orders/{alices['id']}", key=ADMIN).status_code == 200
    assert_problem(client.get("/v1/orders"), 401, "unauthenticated")


def test_orders_list_by_status_newest_first_in_pages(client: Client) -> None:
    ids = [place(client, ("MUG", 1), key=f"p{i}")["id"] for i in range(3)]
    first = client.get("/v1/orders", key=ALICE, params={"limit": 2}).json()
    second = client.get("/v1/orders", key=ALICE, params={"cursor": first["next_cursor"]}).json()
    seen = [o["id"] for o in first["items"] + second["items"]]
    assert sorted(seen, reverse=True) == seen and set(seen) == set(ids)
    client.post(f"/v1/orders/{ids[0]}/cancel", key=ALICE)
    cancelled = client.get("/v1/orders", key=ALICE, params={"status": "cancelled"}).json()
    assert [o["id"] for o in cancelled["items"]] == [ids[0]]
    assert_problem(client.get("/v1/orders", key=ALICE, params={"status": "lost"}), 422,
                   "invalid-input")


def test_the_admin_ships_delivers_and_refunds(client: Client, shop: Platform) -> None:
    order = place(client, ("POT", 1))
    path = f"/v1/orders/{order['id']}"
    assert_problem(client.post(f"{path}/ship", key=ALICE,
                               json={"carrier": "DHL", "tracking_number": "1"}), 403, "forbidden")
    shipped = client.post(f"{path}/ship", key=ADMIN,
                          json={"carrier": "DHL", "tracking_number": "JD0146"})
    assert shipped.status_code == 200
    body = shipped.json()
    assert body["status"] == "shipped" and body["shipment"]["carrier"] == "DHL"
    assert body["payment"]["captured"] == {"amount": 3900, "currency": "EUR"}
    assert_problem(client.post(f"{path}/cancel", key=ALICE), 409, "invalid-transition")
    assert client.post(f"{path}/deliver", key=ADMIN).json()["status"] == "delivered"
    partial = client.post(f"{path}/refund", key=ADMIN, headers=idem("r1"),
                          json={"amount": {"amount": 900, "currency": "EUR"}, "reason": "dent"})
    assert partial.json()["payment"]["refunded"] == {"amount": 900, "currency": "EUR"}
    too_much = client.post(f"{path}/refund", key=ADMIN, headers=idem("r2"),
                           json={"amount": {"amount": 3001, "currency": "EUR"}, "reason": "x"})
    assert_problem(too_much, 409, "refund-exceeds-captured")
    rest = client.post(f"{path}/refund", key=ADMIN, headers=idem("r3"), json={"reason": "goodwill"})
    assert rest.json()["status"] == "refunded"
    assert_problem(client.post("/v1/orders/ord_nope/ship", key=ADMIN,
                               json={"carrier": "DHL", "tracking_number": "1"}), 404, "not-found")
    assert shop.inventory.stock("POT").on_hand == 1


def test_cancel_releases_stock_and_a_second_cancel_is_409(client: Client, shop: Platform) -> None:
    order = place(client, ("MUG", 4))
    cancelled = client.post(f"/v1/orders/{order['id']}/cancel", key=ALICE)
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["payment"]["status"] == "voided"
    assert shop.inventory.availability(["MUG"]) == {"MUG": 10}
    assert_problem(client.post(f"/v1/orders/{order['id']}/cancel", key=ADMIN), 409,
                   "invalid-transition")


# -- rate limits ----------------------------------------------------------------------------

def test_rate_limits_answer_429_with_headers() -> None:
    platform = make_platform()
    seed_shop(platform)
    client = Client(create_app(platform, GatewayConfig(
        api_keys=parse_api_keys(KEYS), rate_limit="3/minute", checkout_rate_limit="1/minute")))
    seen = [client.get("/v1/products", key=ALICE) for _ in range(4)]
    assert [r.status_code for r in seen] == [200, 200, 200, 429]
    assert [r.headers["ratelimit-remaining"] for r in seen] == ["2", "1", "0", "0"]
    assert all(r.headers["ratelimit-limit"] == "3" for r in seen)
    assert 0 < int(seen[0].headers["ratelimit-reset"]) <= 60
    refused = assert_problem(seen[3], 429, "rate-limited")
    assert refused and 0 < int(seen[3].headers["retry-after"]) <= 60
    # per principal: bob and anonymous callers have their own windows
    assert client.get("/v1/products", key=BOB).status_code == 200
    assert client.get("/v1/products").status_code == 200
    # the checkout has its own, stricter limit
    first = client.post("/v1/orders", key=BOB, headers={"Idempotency-Key": "r1"},
                        json=order_body(("MUG", 1)))
    second = client.post("/v1/orders", key=BOB, headers={"Idempotency-Key": "r2"},
                         json=order_body(("MUG", 1)))
    assert (first.status_code, second.status_code) == (201, 429)
    assert first.headers["ratelimit-limit"] == "1"
    assert client.get("/healthz").status_code == 200  # probes are never limited


def test_readiness_fails_when_a_store_does_not_answer(
    client: Client, shop: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    from commerce_core import StoreError  # noqa: PLC0415

    def broken() -> None:
        raise StoreError("database error: connection refused")

    monkeypatch.setattr(shop.inventory_store, "unit_of_work", broken)
    response = client.get("/readyz")
    assert_problem(response, 503, "not-ready")
    assert response.headers["retry-after"]
    assert client.get("/healthz").status_code == 200  # the process itself is fine

"""The second edition's pricing over HTTP: shipping options, tax rates, vouchers, quotes,
priced orders with contact and metadata, and changing metadata later."""

from __future__ import annotations

from typing import Any

import pytest

from commerce_core import Platform
from commerce_core_gateway import GatewayConfig, create_app, parse_api_keys
from tests.gateway.conftest import ADMIN, ALICE, BOB, KEYS, Client, idem, order_body
from tests.gateway.test_http import assert_problem


@pytest.fixture
def priced(client: Client) -> Client:
    """Standard shipping to DE and AT, express to DE, 19 % VAT in DE, a 10 % voucher."""
    for code, body in [
        ("standard", {"name": "Standard", "price": {"amount": 495, "currency": "EUR"},
                      "countries": ["DE", "AT"]}),
        ("express", {"name": "Express", "price": {"amount": 995, "currency": "EUR"},
                     "countries": ["DE"]}),
    ]:
        assert client.put(f"/v1/shipping-options/{code}", key=ADMIN, json=body
                          ).status_code == 201
    assert client.put("/v1/tax-rates/DE", key=ADMIN, json={"rate_bp": 1900}).status_code == 201
    assert client.put("/v1/vouchers/WELCOME10", key=ADMIN, json={
        "kind": "percent", "percent_bp": 1000, "usage_limit": 2, "once_per_customer": True,
        "name": "Welcome"}).status_code == 201
    return client


def paths(problem: dict[str, Any]) -> list[str]:
    """The paths of a problem's field errors."""
    return [error["path"] for error in problem["errors"]]


def priced_order(*lines: tuple[str, int], **fields: Any) -> dict[str, Any]:
    body = order_body(*lines)
    body.update({"shipping_option": "standard", **fields})
    return body


def quote_body(*lines: tuple[str, int], **fields: Any) -> dict[str, Any]:
    body = priced_order(*lines, **fields)
    del body["payment"]
    return body


def test_an_admin_configures_shipping_taxes_and_vouchers_and_anyone_reads_the_options(
    priced: Client,
) -> None:
    replaced = priced.put("/v1/shipping-options/express", key=ADMIN, json={
        "name": "Express", "price": {"amount": 1095, "currency": "EUR"}, "countries": ["DE"]})
    assert replaced.status_code == 200
    assert replaced.json() == {"code": "express", "name": "Express", "active": True,
                               "price": {"amount": 1095, "currency": "EUR"},
                               "countries": ["DE"]}
    options = priced.get("/v1/shipping-options", params={"country": "AT"})
    assert options.status_code == 200
    assert [o["code"] for o in options.json()["items"]] == ["standard"]
    assert [o["code"] for o in priced.get("/v1/shipping-options").json()["items"]] == [
        "express", "standard"]
    priced.put("/v1/shipping-options/express", key=ADMIN, json={
        "name": "Express", "price": {"amount": 1095, "currency": "EUR"}, "active": False})
    assert [o["code"] for o in priced.get("/v1/shipping-options").json()["items"]] == [
        "standard"]
    assert priced.put("/v1/tax-rates/DE", key=ADMIN, json={"rate_bp": 700}).status_code == 200
    assert priced.get("/v1/tax-rates").json() == {"items": [{"country": "DE", "rate_bp": 700}]}
    voucher = priced.get("/v1/vouchers/welcome10", key=ADMIN)
    assert voucher.json() == {"code": "WELCOME10", "kind": "percent", "percent_bp": 1000,
                              "amount": None, "min_subtotal": None, "usage_limit": 2,
                              "once_per_customer": True, "active": True, "name": "Welcome",
                              "used": 0}
    assert [v["code"] for v in priced.get("/v1/vouchers", key=ADMIN).json()["items"]] == [
        "WELCOME10"]


@pytest.mark.parametrize(("method", "path", "body", "key", "status"), [
    ("PUT", "/v1/shipping-options/x", {"name": "X", "price": {"amount": 1, "currency": "EUR"}},
     ALICE, 403),
    ("PUT", "/v1/shipping-options/x", {"name": "X", "price": {"amount": 1, "currency": "EUR"}},
     None, 401),
    ("PUT", "/v1/tax-rates/DE", {"rate_bp": 1900}, ALICE, 403),
    ("PUT", "/v1/vouchers/X", {"kind": "fixed", "amount": {"amount": 1, "currency": "EUR"}},
     BOB, 403),
    ("GET", "/v1/vouchers", None, ALICE, 403),
    ("PATCH", "/v1/orders/ord_x/metadata", {"a": "1"}, ALICE, 403),
    ("POST", "/v1/quotes", {}, ADMIN, 403),
])
def test_pricing_configuration_is_for_admins_and_quotes_for_customers(
    client: Client, method: str, path: str, body: Any, key: str | None, status: int
) -> None:
    response = client.request(method, path, key=key, json=body)
    assert response.status_code == status, response.text


@pytest.mark.parametrize(("path", "body", "field"), [
    ("/v1/shipping-options/x", {"name": "X", "price": {"amount": 1, "currency": "EUR"},
                                "countries": []}, "countries"),
    ("/v1/shipping-options/x", {"name": "X", "price": {"amount": 1, "currency": "EUR"},
                                "countries": ["de"]}, "countries[0]"),
    ("/v1/shipping-options/bad%20code", {"name": "X",
                                         "price": {"amount": 1, "currency": "EUR"}}, "code"),
    ("/v1/tax-rates/DEU", {"rate_bp": 1}, "country"),
    ("/v1/tax-rates/DE", {"rate_bp": 10_001}, "rate_bp"),
    ("/v1/tax-rates/DE", {"rate_bp": "19"}, "rate_bp"),
    ("/v1/vouchers/X", {"kind": "percent"}, "percent_bp"),
    ("/v1/vouchers/X", {"kind": "gift"}, "kind"),
    ("/v1/vouchers/X", {"kind": "fixed", "amount": {"amount": 0, "currency": "EUR"}},
     "amount"),
    ("/v1/vouchers/X", {"kind": "fixed", "amount": {"amount": 5, "currency": "EUR"},
                        "usage_limit": 0}, "usage_limit"),
    ("/v1/vouchers/X", {"kind": "percent", "percent_bp": 10, "surprise": 1}, "surprise"),
])
def test_configuration_that_makes_no_sense_is_422_and_stores_nothing(
    client: Client, path: str, body: dict[str, Any], field: str
) -> None:
    problem = assert_problem(client.put(path, key=ADMIN, json=body), 422, "invalid-input")
    assert field in paths(problem)
    assert client.get("/v1/shipping-options").json() == {"items": []}
    assert client.get("/v1/tax-rates").json() == {"items": []}
    assert client.get("/v1/vouchers", key=ADMIN).json() == {"items": []}


def test_a_quote_is_priced_exactly_as_the_order_then_placed(priced: Client) -> None:
    quoted = priced.post("/v1/quotes", key=ALICE, json=quote_body(
        ("MUG", 2), ("POT", 1), shipping_option="express", voucher_code="welcome10",
        email="alice@example.com", metadata={"cart_id": "c-7"}))
    assert quoted.status_code == 200, quoted.text
    quote = quoted.json()
    # 2 x 12.50 + 39.00 = 64.00; express 9.95; 10 % off: -6.40; VAT 19 % of 67.55 = 12.83
    assert quote["subtotal"] == {"amount": 6400, "currency": "EUR"}
    assert quote["adjustments"] == [
        {"kind": "shipping", "code": "express", "label": "Express",
         "amount": {"amount": 995, "currency": "EUR"}},
        {"kind": "discount", "code": "WELCOME10", "label": "Welcome",
         "amount": {"amount": -640, "currency": "EUR"}}]
    assert quote["taxes"] == [{"country": "DE", "rate_bp": 1900, "inclusive": False,
                               "amount": {"amount": 1283, "currency": "EUR"}}]
    assert quote["total"] == {"amount": 6400 + 995 - 640 + 1283, "currency": "EUR"}
    assert quote["voucher_code"] == "WELCOME10"
    assert priced.get("/v1/vouchers/WELCOME10", key=ADMIN).json()["used"] == 0
    assert priced.get("/v1/products/MUG").json()["available"] == 10  # nothing reserved
    placed = priced.post("/v1/orders", key=ALICE, headers=idem("k1"), json=priced_order(
        ("MUG", 2), ("POT", 1), shipping_option="express", voucher_code="welcome10",
        email="alice@example.com", metadata={"cart_id": "c-7"}))
    assert placed.status_code == 201, placed.text
    order = placed.json()
    for field in ("lines", "subtotal", "adjustments", "taxes", "total"):
        assert order[field] == quote[field]
    assert order["email"] == "alice@example.com" and order["metadata"] == {"cart_id": "c-7"}
    assert order["payment"]["authorized"] == order["total"]
    again = priced.post("/v1/orders", key=ALICE, headers=idem("k1"), json=priced_order(
        ("MUG", 2), ("POT", 1), shipping_option="express", voucher_code="welcome10",
        email="alice@example.com", metadata={"cart_id": "c-7"}))
    assert again.headers["idempotent-replayed"] == "true" and again.json() == order
    assert priced.get("/v1/vouchers/WELCOME10", key=ADMIN).json()["used"] == 1
    assert priced.get(f"/v1/orders/{order['id']}", key=ALICE).json() == order


@pytest.mark.parametrize(("fields", "reason"), [
    ({"voucher_code": "NOPE"}, "unknown"),
    ({"voucher_code": "SMALL"}, "min-subtotal"),
    ({"voucher_code": "OFF"}, "inactive"),
    ({"voucher_code": "ALL", "shipping_option": "pickup"}, "covers-total"),
])
def test_a_voucher_that_does_not_apply_is_a_problem_naming_why(
    priced: Client, fields: dict[str, str], reason: str
) -> None:
    priced.put("/v1/vouchers/SMALL", key=ADMIN, json={
        "kind": "fixed", "amount": {"amount": 100, "currency": "EUR"},
        "min_subtotal": {"amount": 10_000, "currency": "EUR"}})
    priced.put("/v1/vouchers/OFF", key=ADMIN, json={"kind": "percent", "percent_bp": 100,
                                                    "active": False})
    priced.put("/v1/vouchers/ALL", key=ADMIN, json={"kind": "percent", "percent_bp": 10_000})
    priced.put("/v1/shipping-options/pickup", key=ADMIN, json={
        "name": "Pick-up", "price": {"amount": 0, "currency": "EUR"}})
    for response in (priced.post("/v1/quotes", key=ALICE, json=quote_body(("MUG", 1),
                                                                         **fields)),
                     priced.post("/v1/orders", key=ALICE, headers=idem("k"),
                                 json=priced_order(("MUG", 1), **fields))):
        problem = assert_problem(response, 422, "voucher-not-applicable")
        assert problem["reason"] == reason
        assert problem["errors"][0]["path"] == "voucher_code"  # type: ignore[index]
    assert priced.get("/v1/orders", key=ALICE).json()["items"] == []


def test_a_voucher_once_per_customer_and_its_usage_limit_hold_over_http(
    priced: Client, shop: Platform
) -> None:
    assert priced.post("/v1/orders", key=ALICE, headers=idem("a1"), json=priced_order(
        ("MUG", 1), voucher_code="WELCOME10")).status_code == 201
    second = priced.post("/v1/orders", key=ALICE, headers=idem("a2"), json=priced_order(
        ("MUG", 1), voucher_code="WELCOME10"))
    assert assert_problem(second, 422, "voucher-not-applicable")["reason"] == "already-used"
    bob = priced.post("/v1/orders", key=BOB, headers=idem("b1"), json=priced_order(
        ("MUG", 1), voucher_code="WELCOME10"))
    assert bob.status_code == 201
    # the limit of two is reached: a third customer is refused, until an order gives one back
    carol = Client(create_app(shop, GatewayConfig(
        api_keys=parse_api_keys(f"{KEYS},ca=customer:carol"))))
    third = carol.post("/v1/orders", key="ca", headers=idem("c1"), json=priced_order(
        ("MUG", 1), voucher_code="WELCOME10"))
    assert assert_problem(third, 422, "voucher-not-applicable")["reason"] == "used-up"
    assert priced.post(f"/v1/orders/{bob.json()['id']}/cancel", key=BOB).status_code == 200
    assert priced.get("/v1/vouchers/WELCOME10", key=ADMIN).json()["used"] == 1
    assert carol.post("/v1/orders", key="ca", headers=idem("c2"), json=priced_order(
        ("MUG", 1), voucher_code="WELCOME10")).status_code == 201


@pytest.mark.parametrize(("fields", "path"), [
    ({"shipping_option": None}, "shipping_option"),
    ({"shipping_option": "nope"}, "shipping_option"),
    ({"shipping_option": "bad code"}, "shipping_option"),
    ({"email": "alice"}, "email"),
    ({"email": "alice@localhost"}, "email"),
    ({"email": 7}, "email"),
    ({"metadata": {"Gift": "x"}}, "metadata"),
    ({"metadata": {"gift": 1}}, "metadata.gift"),
    ({"metadata": {"gift": "x" * 501}}, "metadata.gift"),
    ({"metadata": {"gift": "\u202egpj.exe"}}, "metadata.gift"),
    ({"metadata": {f"k{n}": "v" for n in range(21)}}, "metadata"),
    ({"metadata": ["gift"]}, "metadata"),
    ({"voucher_code": ""}, "voucher_code"),
])
def test_bad_pricing_fields_are_422_on_their_path_with_nothing_written(
    priced: Client, fields: dict[str, Any], path: str
) -> None:
    body = priced_order(("MUG", 1), **fields)
    problem = assert_problem(priced.post("/v1/orders", key=ALICE, headers=idem("k"),
                                         json=body), 422, "invalid-input")
    assert path in paths(problem)
    assert priced.get("/v1/orders", key=ALICE).json()["items"] == []
    assert priced.get("/v1/products/MUG").json()["available"] == 10


def test_an_order_to_where_no_option_ships_needs_none_and_pays_no_tax(priced: Client) -> None:
    body = order_body(("MUG", 1))
    body["shipping_address"]["country"] = "FR"
    placed = priced.post("/v1/orders", key=ALICE, headers=idem("k"), json=body)
    assert placed.status_code == 201, placed.text
    assert placed.json()["adjustments"] == [] and placed.json()["taxes"] == []
    assert placed.json()["total"] == {"amount": 1250, "currency": "EUR"}


def test_an_admin_merges_metadata_and_null_removes_a_key(priced: Client) -> None:
    placed = priced.post("/v1/orders", key=ALICE, headers=idem("k"), json=priced_order(
        ("MUG", 1), metadata={"cart_id": "c-1", "gift_note": "Happy birthday!\nAda"})).json()
    changed = priced.request("PATCH", f"/v1/orders/{placed['id']}/metadata", key=ADMIN,
                             json={"gift_note": None, "crm_id": "42"})
    assert changed.status_code == 200, changed.text
    assert changed.json()["metadata"] == {"cart_id": "c-1", "crm_id": "42"}
    assert priced.get(f"/v1/orders/{placed['id']}", key=ALICE).json()["metadata"] == {
        "cart_id": "c-1", "crm_id": "42"}
    for body, path in [({"BAD": "x"}, "metadata"), ({"a": 1}, "a"),
                       ({f"k{n}": "v" for n in range(19)}, "metadata"),
                       ({"a": "x" * 501}, "metadata.a")]:
        problem = assert_problem(priced.request(
            "PATCH", f"/v1/orders/{placed['id']}/metadata", key=ADMIN, json=body),
            422, "invalid-input")
        assert problem["errors"][0]["path"] == path  # type: ignore[index]
    assert_problem(priced.request("PATCH", "/v1/orders/ord_nope/metadata", key=ADMIN,
                                  json={"a": "1"}), 404, "not-found")
    assert_problem(priced.request("PATCH", f"/v1/orders/{placed['id']}/metadata", key=ADMIN,
                                  json=["a"]), 422, "invalid-input")
    assert priced.get(f"/v1/orders/{placed['id']}", key=ALICE).json()["metadata"] == {
        "cart_id": "c-1", "crm_id": "42"}


def test_the_document_allows_a_negative_discount_and_describes_the_new_fields(
    client: Client,
) -> None:
    document = client.get("/openapi.json").json()
    schemas = document["components"]["schemas"]
    assert schemas["SignedMoneyOut"]["properties"]["amount"]["minimum"] == -(10**12)
    body = schemas["PlaceOrderBody"]["properties"]
    assert body["metadata"]["maxProperties"] == 20
    assert body["metadata"]["propertyNames"] == {"pattern": "^[a-z0-9_.-]{1,40}$"}
    assert "email" in body and "voucher_code" in body and "shipping_option" in body
    assert schemas["MetadataPatchBody"]["type"] == "object"
    assert "404" in document["paths"]["/v1/vouchers/{code}"]["put"]["responses"]


def test_without_a_configurable_pricing_the_pricing_routes_are_not_found(shop: Platform) -> None:
    from commerce_core.pricing import LinesOnly  # noqa: PLC0415 - this test only

    shop.checkout.pricing = LinesOnly()
    client = Client(create_app(shop, GatewayConfig(api_keys=parse_api_keys(KEYS))))
    assert_problem(client.get("/v1/shipping-options"), 404, "not-found")
    assert_problem(client.put("/v1/tax-rates/DE", key=ADMIN, json={"rate_bp": 1}), 404,
                   "not-found")
    quoted = client.post("/v1/quotes", key=ALICE, json={
        key: value for key, value in order_body(("MUG", 1)).items() if key != "payment"})
    assert quoted.status_code == 200 and quoted.json()["total"]["amount"] == 1250

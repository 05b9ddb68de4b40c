"""Input that looks like something else: format characters and separators in text (a name
that reads backwards on a packing slip), duplicate JSON keys, repeated query parameters."""

from __future__ import annotations

import pytest

from commerce_core import InvalidInput, Money, Platform
from tests.conftest import ADDRESS, order, seed
from tests.gateway.conftest import ADMIN, ALICE, Client, idem, order_body

SPOOFS = ["abc\u202egpj.exe", "\u200b", "Ada\u200dLovelace", "\ufeffAda", "Main St\u20281",
          "Para\u2029graph", "soft\u00adhyphen", "tag\U000e0041",
          # blanks that are letters or symbols by category, private use, noncharacters
          "\u3164\u3164\u3164", "\u2800", "A\u115fda", "\ufe0f\ufe0f", "pri\ue000vate",
          "non\ufdd0char", "astral\U000f0000"]


@pytest.mark.parametrize("text", SPOOFS)
def test_the_core_refuses_format_characters_and_separators_in_text(
    platform: Platform, text: str
) -> None:
    seed(platform)
    with pytest.raises(InvalidInput) as refused:
        platform.inventory.upsert_product("CUP", name=text, price=Money(1, "EUR"))
    assert [e.path for e in refused.value.errors] == ["name"]
    import attrs  # noqa: PLC0415

    command = order(("MUG", 1))
    command = attrs.evolve(command, shipping_address=attrs.evolve(ADDRESS, name=text))
    with pytest.raises(InvalidInput):
        platform.checkout.place_order(command, idempotency_key="k1")
    assert platform.orders.list().items == []


def test_plain_letters_of_every_script_are_welcome(platform: Platform) -> None:
    seed(platform)
    for name in ["Ünïcödé Müg", "Кружка", "マグカップ", "كوب", "Ada O'Brien-Smith"]:
        platform.inventory.upsert_product("CUP", name=name, price=Money(1, "EUR"))


@pytest.mark.parametrize("text", SPOOFS[:6])
def test_the_gateway_refuses_them_too(client: Client, text: str) -> None:
    body = order_body(("MUG", 1))
    body["shipping_address"]["name"] = text
    answer = client.post("/v1/orders", key=ALICE, headers=idem("k1"), json=body)
    assert answer.status_code == 422
    assert [e["path"] for e in answer.json()["errors"]] == ["shipping_address.name"]


def test_a_key_twice_in_one_json_object_is_400(client: Client) -> None:
    raw = b'{"name": "Cup", "price": {"amount": 1, "currency": "EUR"}, "name": "Other"}'
    answer = client.put("/v1/products/CUP", key=ADMIN, content=raw,
                        headers={"Content-Type": "application/json"})
    assert answer.status_code == 400
    assert answer.json()["type"] == "/problems/malformed-json" and "'name'" in answer.text


def test_a_query_parameter_twice_is_422(client: Client) -> None:
    answer = client.get("/v1/products?limit=1&limit=100")
    assert answer.status_code == 422
    assert answer.json()["errors"] == [{"path": "limit", "message": "given more than once"}]

"""The gateway's structuring: JSON paths, every error at once, validators' own messages."""

from __future__ import annotations

import attrs
import pytest

from commerce_core import InvalidInput
from commerce_core_gateway._schemas import Checked, constraints, structure
from commerce_core_gateway.bodies import PlaceOrderBody


@attrs.frozen
class Thing:
    size: int = attrs.field(validator=attrs.validators.gt(0))


@attrs.frozen
class Box(Checked):
    label: str = attrs.field(metadata=constraints(minLength=2))
    things: list[Thing] = attrs.field(metadata=constraints(maxItems=2))


def paths(data: object, cls: type) -> dict[str, str]:
    with pytest.raises(InvalidInput) as caught:
        structure(data, cls)
    return {e.path: e.message for e in caught.value.errors}


def test_an_attrs_validators_message_survives_with_its_path() -> None:
    found = paths({"label": "ok", "things": [{"size": 1}, {"size": -4}]}, Box)
    assert found == {"things[1]": "'size' must be > 0: -4"}


def test_every_field_is_reported_at_once() -> None:
    found = paths({"label": "x", "things": [{"size": 1}] * 3, "extra": 1}, Box)
    assert found == {"label": "must have at least 2 character(s)",
                     "things": "must have at most 2 items", "extra": "unknown field"}


def test_a_whole_order_reports_nested_paths() -> None:
    body = {"lines": [{"sku": "A", "quantity": 1}, {"sku": "bad sku", "quantity": 0}],
            "payment": {"token": "tok_visa"},
            "shipping_address": {"name": " ", "line1": "x", "city": "y", "postal_code": "z",
                                 "country": "de"}}
    found = paths(body, PlaceOrderBody)
    assert set(found) == {"lines[1].sku", "lines[1].quantity", "shipping_address.name",
                          "shipping_address.country"}
    assert found["lines[1].quantity"] == "must be at least 1"


@pytest.mark.parametrize("value", [True, "1", 1.0, None, [1]])
def test_json_types_are_not_coerced(value: object) -> None:
    @attrs.frozen
    class Count(Checked):
        n: int

    assert set(paths({"n": value}, Count)) == {"n"}

"""JSON to commands and domain objects to JSON, as the HTTP contract has them: for a host
with routes of its own (a Flask or Django view) that takes the contract's bodies and answers
with its resources. The gateway uses the same functions.

    try:
        command = convert.place_order(request.get_json(), customer_id=user.id)
    except InvalidInput as error:        # every problem at once, each with its JSON path
        return convert.problem(error), 422
    order = platform.checkout.place_order(command, idempotency_key=key)
    return convert.order_json(order, platform.orders.payment(order)), 201

Parsed JSON goes in (dicts, lists, strings, numbers, as `json.loads` makes them); what comes
out is ready for `json.dumps`.
"""

from __future__ import annotations

from typing import Any

from commerce_core import (
    Address,
    CommerceError,
    Order,
    OrderItem,
    Payment,
    PlaceOrder,
    QuoteOrder,
)
from commerce_core.orders import Return, ReturnLine
from commerce_core_gateway._schemas import converter, structure
from commerce_core_gateway.bodies import PlaceOrderBody, QuoteBody, ReturnBody

__all__ = ["body", "order_json", "place_order", "place_order_of", "problem", "quote",
           "quote_of", "request_return", "request_return_of", "return_json", "to_json"]


def body(data: object, cls: type[Any]) -> Any:
    """``data`` as one of the contract's bodies (`commerce_core_gateway.bodies`), or
    `InvalidInput` listing every problem with its JSON path (``lines[0].quantity``): what
    every function here raises on bad input."""
    return structure(data, cls)


def _order_fields(found: PlaceOrderBody | QuoteBody, customer_id: str) -> dict[str, Any]:
    address = found.shipping_address
    return {
        "customer_id": customer_id,
        "lines": [OrderItem(line.sku, line.quantity) for line in found.lines],
        "shipping_address": Address(address.name, address.line1, address.city,
                                    address.postal_code, address.country, line2=address.line2),
        "shipping_option": found.shipping_option, "voucher_code": found.voucher_code,
        "email": found.email, "metadata": found.metadata,
    }


def place_order(data: object, *, customer_id: str) -> PlaceOrder:
    """The `PlaceOrder` a ``POST /v1/orders`` body asks for, for ``customer_id``."""
    found: PlaceOrderBody = structure(data, PlaceOrderBody)
    return place_order_of(found, customer_id)


def place_order_of(found: PlaceOrderBody, customer_id: str) -> PlaceOrder:
    """The `PlaceOrder` of a body already structured."""
    return PlaceOrder(payment_token=found.payment.token, **_order_fields(found, customer_id))


def quote(data: object, *, customer_id: str) -> QuoteOrder:
    """The `QuoteOrder` a ``POST /v1/quotes`` body asks for."""
    return quote_of(structure(data, QuoteBody), customer_id)


def quote_of(found: QuoteBody, customer_id: str) -> QuoteOrder:
    return QuoteOrder(**_order_fields(found, customer_id))


def request_return(data: object) -> tuple[list[ReturnLine], str]:
    """The lines and the reason a ``POST /v1/orders/{id}/returns`` body asks for."""
    return request_return_of(structure(data, ReturnBody))


def request_return_of(found: ReturnBody) -> tuple[list[ReturnLine], str]:
    """The lines and the reason of a return's body already structured."""
    return [ReturnLine(line.sku, line.quantity) for line in found.lines], found.reason


def to_json(value: Any) -> Any:
    """One of the contract's resources (`commerce_core_gateway.bodies`) as JSON values."""
    return converter.unstructure(value)


def order_json(order: Order, payment: Payment | None) -> dict[str, Any]:
    """The order resource of the contract (``GET /v1/orders/{id}``)."""
    from commerce_core_gateway.handlers import order_resource  # noqa: PLC0415 - no cycle

    result: dict[str, Any] = to_json(order_resource(order, payment))
    return result


def return_json(found: Return) -> dict[str, Any]:
    """The return resource of the contract (``GET /v1/returns/{id}``)."""
    from commerce_core_gateway.handlers import return_out  # noqa: PLC0415 - no cycle

    result: dict[str, Any] = to_json(return_out(found))
    return result


def problem(error: CommerceError) -> dict[str, Any]:
    """The RFC 9457 problem of a library error, as the gateway answers it (its HTTP status
    is ``["status"]``); for `InvalidInput`, ``errors`` lists each field's path and
    message."""
    import json  # noqa: PLC0415

    from commerce_core_gateway.problems import problem_for  # noqa: PLC0415

    response = problem_for(error)
    result: dict[str, Any] = json.loads(bytes(response.body))
    return result

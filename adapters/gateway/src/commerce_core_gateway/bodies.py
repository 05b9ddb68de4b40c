"""The JSON bodies of the HTTP contract, as attrs classes (they also generate the OpenAPI)."""

from __future__ import annotations

import attrs

from commerce_core import FORBIDDEN_CHARACTERS
from commerce_core_gateway._schemas import SKU_PATTERN, Checked, constraints

__all__ = [
    "AddressBody",
    "AdjustmentBody",
    "FieldErrorBody",
    "HistoryEntry",
    "InventoryOut",
    "LevelOut",
    "LineBody",
    "MoneyBody",
    "OrderLineOut",
    "OrderOut",
    "OrderPage",
    "PaymentBody",
    "PaymentOut",
    "PlaceOrderBody",
    "Problem",
    "ProductBody",
    "ProductOut",
    "ProductPage",
    "RefundBody",
    "ShipBody",
    "ShipmentOut",
    "Status",
    "WarehouseBody",
    "WarehouseOut",
]

#: Text: 1 to 200 characters, not only spaces, no control, format or separator characters
#: and no lone surrogates (the core's rule, `commerce_core.FORBIDDEN_CHARACTERS`).
_OK = f"[^{FORBIDDEN_CHARACTERS}]"
_TEXT: dict[str, object] = {"minLength": 1, "maxLength": 200, "pattern": f"^{_OK}*\\S{_OK}*$"}


@attrs.frozen
class MoneyBody(Checked):
    amount: int = attrs.field(metadata=constraints(
        minimum=0, maximum=10**12, description="minor units (cents)"))
    currency: str = attrs.field(metadata=constraints(
        pattern=r"^[A-Z]{3}$", description="ISO 4217 code"))


# -- requests -------------------------------------------------------------------------------


@attrs.frozen
class ProductBody(Checked):
    name: str = attrs.field(metadata=constraints(**_TEXT))
    price: MoneyBody
    active: bool = True


@attrs.frozen
class WarehouseBody(Checked):
    name: str = attrs.field(metadata=constraints(**_TEXT))


@attrs.frozen
class AdjustmentBody(Checked):
    warehouse: str = attrs.field(metadata=constraints(pattern=SKU_PATTERN))
    delta: int = attrs.field(metadata=constraints(
        minimum=-1_000_000, maximum=1_000_000, **{"not": {"const": 0}}))
    reason: str = attrs.field(metadata=constraints(**_TEXT))


@attrs.frozen
class LineBody(Checked):
    sku: str = attrs.field(metadata=constraints(pattern=SKU_PATTERN))
    quantity: int = attrs.field(metadata=constraints(minimum=1, maximum=1000))


@attrs.frozen
class PaymentBody(Checked):
    token: str = attrs.field(metadata=constraints(
        minLength=1, maxLength=255, pattern=r"^[\x21-\x7e]+$",
        description="a provider token; never card data"))


@attrs.frozen
class AddressBody(Checked):
    name: str = attrs.field(metadata=constraints(**_TEXT))
    line1: str = attrs.field(metadata=constraints(**_TEXT))
    city: str = attrs.field(metadata=constraints(**_TEXT))
    postal_code: str = attrs.field(metadata=constraints(**_TEXT))
    country: str = attrs.field(metadata=constraints(
        pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2"))
    line2: str | None = attrs.field(default=None, metadata=constraints(**_TEXT))


@attrs.frozen
class PlaceOrderBody(Checked):
    lines: list[LineBody] = attrs.field(metadata=constraints(minItems=1, maxItems=100))
    payment: PaymentBody
    shipping_address: AddressBody


@attrs.frozen
class ShipBody(Checked):
    carrier: str = attrs.field(metadata=constraints(**_TEXT))
    tracking_number: str = attrs.field(metadata=constraints(**_TEXT))


@attrs.frozen
class RefundBody(Checked):
    reason: str = attrs.field(metadata=constraints(**_TEXT))
    amount: MoneyBody | None = None


# -- responses ------------------------------------------------------------------------------


@attrs.frozen
class Status:
    status: str


@attrs.frozen
class ProductOut:
    sku: str
    name: str
    price: MoneyBody
    active: bool
    available: int


@attrs.frozen
class ProductPage:
    items: list[ProductOut]
    next_cursor: str | None


@attrs.frozen
class WarehouseOut:
    code: str
    name: str


@attrs.frozen
class LevelOut:
    warehouse: str
    on_hand: int
    reserved: int
    available: int


@attrs.frozen
class InventoryOut:
    sku: str
    levels: list[LevelOut]
    on_hand: int
    reserved: int
    available: int


@attrs.frozen
class AdjustedLevelOut:
    sku: str
    warehouse: str
    on_hand: int
    reserved: int
    available: int


@attrs.frozen
class OrderLineOut:
    sku: str
    name: str
    quantity: int
    unit_price: MoneyBody
    total: MoneyBody


@attrs.frozen
class PaymentOut:
    id: str
    status: str
    authorized: MoneyBody
    captured: MoneyBody
    refunded: MoneyBody
    capture_before: str | None = None  # when the provider's hold lapses, if it said


@attrs.frozen
class ShipmentOut:
    carrier: str
    tracking_number: str
    shipped_at: str


@attrs.frozen
class HistoryEntry:
    status: str
    at: str


@attrs.frozen
class ShippingAddressOut:
    name: str
    line1: str
    line2: str | None
    city: str
    postal_code: str
    country: str


@attrs.frozen
class OrderOut:
    id: str
    customer_id: str
    status: str
    lines: list[OrderLineOut]
    total: MoneyBody
    shipping_address: ShippingAddressOut
    payment: PaymentOut | None
    shipment: ShipmentOut | None
    failure_reason: str | None
    history: list[HistoryEntry]
    created_at: str
    updated_at: str


@attrs.frozen
class OrderPage:
    items: list[OrderOut]
    next_cursor: str | None


@attrs.frozen
class FieldErrorBody:
    path: str
    message: str


@attrs.frozen
class ShortageOut:
    sku: str
    requested: int
    available: int


@attrs.frozen
class Problem:
    """RFC 9457 problem details, with this API's extension members."""

    type: str
    title: str
    status: int
    detail: str
    errors: list[FieldErrorBody] | None = None
    #: how many more errors there were than ``errors`` lists (at most 50)
    errors_omitted: int | None = None
    order_id: str | None = None
    #: the request's id (also in ``X-Request-Id``), on a 5xx: what to quote to support
    request_id: str | None = None
    shortages: list[ShortageOut] | None = None


@attrs.frozen
class WebhookReceipt:
    """A provider's event, received: what was done with it (``ignored``, ``duplicate``,
    ``noted``, ``advanced``, ``cancelled``, ``unknown_order``)."""

    received: bool
    outcome: str

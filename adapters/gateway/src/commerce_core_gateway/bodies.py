"""The JSON bodies of the HTTP contract, as attrs classes (they also generate the OpenAPI)."""

from __future__ import annotations

from typing import Any, ClassVar

import attrs

from commerce_core import FORBIDDEN_CHARACTERS, FieldError, InvalidInput
from commerce_core._validate import EMAIL, MAX_METADATA_KEYS, MAX_METADATA_VALUE, METADATA_FORBIDDEN
from commerce_core.webhooks import EVENT_TYPES
from commerce_core_gateway._schemas import SKU_PATTERN, Checked, constraints, converter

__all__ = [
    "AddressBody",
    "AdjustmentBody",
    "AdjustmentOut",
    "FieldErrorBody",
    "HistoryEntry",
    "InventoryOut",
    "LevelOut",
    "LineBody",
    "MetadataPatchBody",
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
    "QuoteBody",
    "QuoteOut",
    "ReceiveBody",
    "RefundBody",
    "RejectBody",
    "ReturnBody",
    "ReturnList",
    "ReturnOut",
    "ReturnRefundBody",
    "ShipBody",
    "ShipmentOut",
    "ShippingOptionBody",
    "ShippingOptionList",
    "ShippingOptionOut",
    "SignedMoneyOut",
    "Status",
    "TaxOut",
    "TaxRateBody",
    "TaxRateList",
    "TaxRateOut",
    "VoucherBody",
    "VoucherList",
    "VoucherOut",
    "WarehouseBody",
    "WarehouseOut",
    "WebhookDeliveryOut",
    "WebhookDeliveryPage",
    "WebhookEndpointBody",
    "WebhookEndpointList",
    "WebhookEndpointOut",
    "WebhookReplayBody",
    "WebhookReplayOut",
]

#: Text: 1 to 200 characters, not only spaces, no control, format or separator characters
#: and no lone surrogates (the core's rule, `commerce_core.FORBIDDEN_CHARACTERS`).
_OK = f"[^{FORBIDDEN_CHARACTERS}]"
_TEXT: dict[str, object] = {"minLength": 1, "maxLength": 200, "pattern": f"^{_OK}*\\S{_OK}*$"}


COUNTRY_PATTERN = r"^[A-Z]{2}$"
METADATA_KEY_PATTERN = r"^[a-z0-9_.-]{1,40}$"
#: An order's metadata: at most 20 keys to strings of at most 500 characters (line breaks
#: and tabs allowed, other control and format characters not).
METADATA_VALUE: dict[str, Any] = {"type": "string", "maxLength": MAX_METADATA_VALUE,
                                  "pattern": f"^[^{METADATA_FORBIDDEN}]*$"}
_METADATA: dict[str, Any] = {
    "maxProperties": MAX_METADATA_KEYS, "propertyNames": {"pattern": METADATA_KEY_PATTERN},
    "additionalProperties": METADATA_VALUE,
    "description": f"at most {MAX_METADATA_KEYS} keys to strings of at most "
                   f"{MAX_METADATA_VALUE} characters"}
_EMAIL: dict[str, Any] = {"maxLength": 254, "pattern": f"^{EMAIL.pattern}$",
                          "description": "the customer's contact address"}


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
    shipping_option: str | None = attrs.field(default=None, metadata=constraints(
        pattern=SKU_PATTERN, description="a shipping option's code; required where active "
                                         "options ship to the destination"))
    voucher_code: str | None = attrs.field(default=None, metadata=constraints(
        pattern=SKU_PATTERN, description="a voucher's code (compared without case)"))
    email: str | None = attrs.field(default=None, metadata=constraints(**_EMAIL))
    metadata: dict[str, str] = attrs.field(factory=dict, metadata=constraints(**_METADATA))


@attrs.frozen
class QuoteBody(Checked):
    """An order to price: the order's body without its payment."""

    lines: list[LineBody] = attrs.field(metadata=constraints(minItems=1, maxItems=100))
    shipping_address: AddressBody
    shipping_option: str | None = attrs.field(default=None, metadata=constraints(
        pattern=SKU_PATTERN))
    voucher_code: str | None = attrs.field(default=None, metadata=constraints(
        pattern=SKU_PATTERN))
    email: str | None = attrs.field(default=None, metadata=constraints(**_EMAIL))
    metadata: dict[str, str] = attrs.field(factory=dict, metadata=constraints(**_METADATA))


class MetadataPatchBody:
    """Changes to an order's metadata: a key to a string sets it, to null removes it."""

    json_schema: ClassVar[dict[str, Any]] = {
        "type": "object", "maxProperties": 100,
        "propertyNames": {"pattern": METADATA_KEY_PATTERN},
        "additionalProperties": {"anyOf": [METADATA_VALUE, {"type": "null"}]},
        "description": "a key to a string sets it, to null removes it",
    }

    def __init__(self, changes: dict[str, str | None]) -> None:
        self.changes = changes


def _structure_patch(data: Any, _: type) -> MetadataPatchBody:
    most = MetadataPatchBody.json_schema["maxProperties"]
    if len(data) > most:
        raise InvalidInput("invalid value", [FieldError("", f"must have at most {most} keys")])
    wrong = [FieldError(str(key)[:100], "must be a string or null")
             for key, value in data.items() if value is not None and not isinstance(value, str)]
    if wrong:
        raise InvalidInput("invalid value", wrong)
    return MetadataPatchBody(dict(data))


converter.register_structure_hook(MetadataPatchBody, _structure_patch)


@attrs.frozen
class ShippingOptionBody(Checked):
    name: str = attrs.field(metadata=constraints(**_TEXT))
    price: MoneyBody
    countries: list[str] | None = attrs.field(default=None, metadata=constraints(
        minItems=1, maxItems=250, items={"type": "string", "pattern": COUNTRY_PATTERN},
        description="ISO 3166-1 alpha-2 codes it ships to; null: everywhere"))
    active: bool = True


@attrs.frozen
class TaxRateBody(Checked):
    rate_bp: int = attrs.field(metadata=constraints(
        minimum=0, maximum=10_000, description="basis points: 1900 is 19 %"))


@attrs.frozen
class VoucherBody(Checked):
    kind: str = attrs.field(metadata=constraints(enum=["percent", "fixed"]))
    percent_bp: int | None = attrs.field(default=None, metadata=constraints(
        minimum=1, maximum=10_000, description="for a percent voucher: basis points off"))
    amount: MoneyBody | None = None
    min_subtotal: MoneyBody | None = None
    usage_limit: int | None = attrs.field(default=None, metadata=constraints(
        minimum=1, maximum=10**9, description="how many orders may hold a use at once"))
    once_per_customer: bool = False
    active: bool = True
    name: str | None = attrs.field(default=None, metadata=constraints(**_TEXT))


@attrs.frozen
class ShipBody(Checked):
    carrier: str = attrs.field(metadata=constraints(**_TEXT))
    tracking_number: str = attrs.field(metadata=constraints(**_TEXT))
    lines: list[LineBody] | None = attrs.field(default=None, metadata=constraints(
        minItems=1, maxItems=100,
        description="what the parcel holds; all that is left to ship when absent"))
    warehouse: str | None = attrs.field(default=None, metadata=constraints(
        pattern=SKU_PATTERN,
        description="where the units are taken from; wherever they are reserved if absent"))


@attrs.frozen
class RefundBody(Checked):
    reason: str = attrs.field(metadata=constraints(**_TEXT))
    amount: MoneyBody | None = None


@attrs.frozen
class ReturnBody(Checked):
    lines: list[LineBody] = attrs.field(metadata=constraints(
        minItems=1, maxItems=100, description="the shipped units to send back"))
    reason: str = attrs.field(metadata=constraints(
        minLength=1, maxLength=500, pattern=_TEXT["pattern"]))


@attrs.frozen
class ReceiveBody(Checked):
    warehouse: str = attrs.field(metadata=constraints(
        pattern=SKU_PATTERN, description="where the goods arrived"))
    restock: bool = attrs.field(metadata=constraints(
        description="true: back on hand there (ledger reason return); false: written off"))


@attrs.frozen
class ReturnRefundBody(Checked):
    include_shipping: bool = attrs.field(default=False, metadata=constraints(
        description="refund the shipping's share too (once per order)"))


@attrs.frozen
class RejectBody(Checked):
    reason: str | None = attrs.field(default=None, metadata=constraints(
        minLength=1, maxLength=500, pattern=_TEXT["pattern"]))


_EVENT_PATTERNS = ["*", *sorted({t.split(".")[0] + ".*" for t in EVENT_TYPES}), *EVENT_TYPES]


@attrs.frozen
class WebhookEndpointBody(Checked):
    url: str = attrs.field(metadata=constraints(
        minLength=1, maxLength=2048, pattern=r"^https?://[\x21-\x7e]+$",
        description="where events are POSTed (http or https; redirects are not followed)"))
    secret: str = attrs.field(metadata=constraints(
        minLength=16, maxLength=255, pattern=r"^[\x21-\x7e]+$",
        description="the key of the Commerce-Signature HMAC; never shown again"))
    events: list[str] = attrs.field(metadata=constraints(
        minItems=1, maxItems=50, items={"type": "string", "enum": _EVENT_PATTERNS},
        description="event types, a kind's (order.*) or * (every event)"))
    active: bool = attrs.field(default=True, metadata=constraints(
        description="false pauses it: nothing is queued, what is queued waits"))


@attrs.frozen
class WebhookReplayBody(Checked):
    delivery_ids: list[str] | None = attrs.field(default=None, metadata=constraints(
        minItems=1, maxItems=100,
        items={"type": "string", "minLength": 1, "maxLength": 64, "pattern": r"^[\x21-\x7e]+$"},
        description="only these failed deliveries; every failed one when absent"))


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
    #: units that have shipped, and units cancelled before they shipped (0 in a quote)
    shipped_quantity: int = 0
    cancelled_quantity: int = 0
    #: units sent back in returns (not rejected, or received before they were)
    returned_quantity: int = 0


@attrs.frozen
class PaymentOut:
    id: str
    status: str
    authorized: MoneyBody
    captured: MoneyBody
    refunded: MoneyBody
    capture_before: str | None = None  # when the provider's hold lapses, if it said


@attrs.frozen
class ShipmentLineOut:
    sku: str
    quantity: int


@attrs.frozen
class ShipmentOut:
    """A parcel. ``id`` is empty and ``lines`` list the whole order for one shipped before
    0.2 (when orders shipped whole)."""

    id: str
    carrier: str
    tracking_number: str
    shipped_at: str
    lines: list[ShipmentLineOut]
    warehouse: str | None


@attrs.frozen
class ReturnOut:
    """A return: ``refund`` is what was refunded for it once ``refunded`` (null before),
    ``shipping_refund`` the part of it that was the shipping's."""

    id: str
    order_id: str
    status: str
    lines: list[ShipmentLineOut]
    reason: str
    refund: MoneyBody | None
    shipping_refund: MoneyBody | None
    include_shipping: bool
    warehouse: str | None
    restock: bool | None
    rejection_reason: str | None
    requested_at: str
    received_at: str | None
    updated_at: str


@attrs.frozen
class ReturnList:
    items: list[ReturnOut]


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
class SignedMoneyOut:
    """An amount that may be negative (a discount)."""

    amount: int = attrs.field(metadata=constraints(minimum=-(10**12), maximum=10**12))
    currency: str


@attrs.frozen
class AdjustmentOut:
    """A charge (``shipping``, ``fee``) or a ``discount`` (negative) beyond the lines."""

    kind: str = attrs.field(metadata=constraints(enum=["shipping", "fee", "discount"]))
    code: str
    label: str
    amount: SignedMoneyOut


@attrs.frozen
class TaxOut:
    """A tax of the destination country; ``inclusive``: contained in the prices (shown, not
    added to the total)."""

    country: str
    rate_bp: int
    inclusive: bool
    amount: MoneyBody


@attrs.frozen
class OrderOut:
    id: str
    customer_id: str
    status: str
    lines: list[OrderLineOut]
    subtotal: MoneyBody
    adjustments: list[AdjustmentOut]
    taxes: list[TaxOut]
    total: MoneyBody
    shipping_address: ShippingAddressOut
    payment: PaymentOut | None
    #: the first parcel (the first edition's field)
    shipment: ShipmentOut | None
    #: every parcel, oldest first
    shipments: list[ShipmentOut]
    failure_reason: str | None
    history: list[HistoryEntry]
    created_at: str
    updated_at: str
    email: str | None
    metadata: dict[str, str]


@attrs.frozen
class QuoteOut:
    """What the order would cost if placed now."""

    lines: list[OrderLineOut]
    subtotal: MoneyBody
    adjustments: list[AdjustmentOut]
    taxes: list[TaxOut]
    total: MoneyBody
    voucher_code: str | None
    email: str | None
    metadata: dict[str, str]


@attrs.frozen
class ShippingOptionOut:
    code: str
    name: str
    price: MoneyBody
    countries: list[str] | None
    active: bool


@attrs.frozen
class ShippingOptionList:
    items: list[ShippingOptionOut]


@attrs.frozen
class TaxRateOut:
    country: str
    rate_bp: int


@attrs.frozen
class TaxRateList:
    items: list[TaxRateOut]


@attrs.frozen
class VoucherOut:
    """A voucher, and how many orders hold a use of it (``used``)."""

    code: str
    kind: str
    percent_bp: int | None
    amount: MoneyBody | None
    min_subtotal: MoneyBody | None
    usage_limit: int | None
    once_per_customer: bool
    active: bool
    name: str | None
    used: int


@attrs.frozen
class VoucherList:
    items: list[VoucherOut]


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
    #: why a voucher does not apply: unknown, inactive, min-subtotal, currency, used-up,
    #: already-used, covers-total
    reason: str | None = None


@attrs.frozen
class WebhookReceipt:
    """A provider's event, received: what was done with it (``ignored``, ``duplicate``,
    ``noted``, ``advanced``, ``cancelled``, ``unknown_order``)."""

    received: bool
    outcome: str


@attrs.frozen
class WebhookEndpointOut:
    """An endpoint (its secret is never shown)."""

    id: str
    url: str
    events: list[str]
    active: bool
    created_at: str
    updated_at: str


@attrs.frozen
class WebhookEndpointList:
    items: list[WebhookEndpointOut]


@attrs.frozen
class WebhookDeliveryOut:
    """One event for an endpoint: ``pending`` (queued, or waiting ``next_attempt_at`` after
    a failed attempt), ``delivered`` (answered 2xx) or ``failed`` (every attempt failed: a
    dead letter until replayed). ``response_status`` and ``last_error`` are the last
    attempt's (null: no answer, or no error)."""

    id: str
    event_id: str
    event_type: str
    status: str
    attempts: int
    response_status: int | None
    last_error: str | None
    created_at: str
    last_attempt_at: str | None
    next_attempt_at: str | None
    delivered_at: str | None


@attrs.frozen
class WebhookDeliveryPage:
    items: list[WebhookDeliveryOut]
    next_cursor: str | None


@attrs.frozen
class WebhookReplayOut:
    replayed: int

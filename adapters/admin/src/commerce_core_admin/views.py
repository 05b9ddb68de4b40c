"""The console's pages. Each view is a plain function run on a worker thread; every action
goes through the same services as the HTTP API, so a refused action shows the API's own
message and changes nothing."""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from starlette.responses import Response

from commerce_core import (
    CommerceError,
    ConcurrencyConflict,
    FieldError,
    InvalidInput,
    Money,
    NotFound,
    Order,
    OrderStatus,
    StandardPricing,
)
from commerce_core.clock import first_id_at
from commerce_core.events import outbox_backlog
from commerce_core.orders import ReturnStatus, SagaStep, ShipmentLine, SummaryRow
from commerce_core.pagination import encode_cursor
from commerce_core.pricing import ShippingOption, TaxRate, Voucher, VoucherKind
from commerce_core_admin.app import Page, View
from commerce_core_admin.sessions import Session

__all__ = ["ROUTES"]

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_SHIPPABLE = (OrderStatus.CONFIRMED, OrderStatus.PARTIALLY_SHIPPED)
_REVENUE = (OrderStatus.CONFIRMED, OrderStatus.PARTIALLY_SHIPPED, OrderStatus.SHIPPED,
            OrderStatus.DELIVERED)
_DONE = {
    "shipped": "The parcel is on its way.",
    "delivered": "The order is marked delivered.",
    "cancelled": "The order is cancelled: what had not shipped is released and given back.",
    "refunded": "The refund is made.",
    "metadata": "The metadata is saved.",
    "received": "The return is received.",
    "return-refunded": "The return is refunded.",
    "rejected": "The return is rejected.",
    "adjusted": "The stock is adjusted.",
    "saved": "Saved.",
}


_CHANGED = ("The order changed since this was asked for (another admin, or the same form "
            "sent twice): look at it again before you confirm.")


def _done(page: Page) -> str | None:
    return _DONE.get(page.query.get("done", ""))


def _invalid(field: str, message: str) -> InvalidInput:
    return InvalidInput(f"invalid {field}", [FieldError(field, message)])


# -- signing in and out ---------------------------------------------------------------------

def _next(page: Page, value: str) -> str:
    """Where to go after signing in: a path of this console only (never another site)."""
    base = page.base
    if (value.startswith(f"{base}/") and not value.startswith("//")
            and re.fullmatch(r"[A-Za-z0-9/_.~%-]*", value)
            and not {".", ".."} & set(value.split("/"))
            and "%2e" not in value.lower()):  # nor a way out of the console spelt %2e%2e
        return value
    return f"{base}/"


def sign_in_form(page: Page) -> Response:
    if page.principal is not None:
        return page.redirect("/")
    return page.render("sign_in.html", next=page.query.get("next", ""), message=None)


def sign_in(page: Page) -> Response:
    console = page.console
    wait = console.blocked(page.request)
    target = page.field("next")
    if wait is not None:
        return page.render("sign_in.html", 429, next=target, message=(
            f"Too many failed sign-ins from this address; try again in {max(1, wait)} s."))
    key = page.field("key")
    tag = console.sessions.tag(key) if key else ""
    principal = console.keys.get(tag)
    if principal is None or principal.role.value != "admin":
        console.failed(page.request)
        message = ("This key is not an admin's: customers have no console."
                   if principal is not None else "This key is not valid.")
        return page.render("sign_in.html", 403 if principal is not None else 401,
                           next=target, message=message)
    page.session = Session.new(f"key:{tag}")  # a new session: nothing carried over
    return Response(status_code=303, headers={"Location": _next(page, target)})


def sign_out(page: Page) -> Response:
    if page.session.who is not None and not page.console.revoke(page.session):
        return page.render(
            "error.html", 503, fields=[], message="The sign-out could not be recorded (the "
            "sessions' storage does not answer), so you are still signed in: copies of this "
            "session would still work. Try again in a moment.")
    page.session = Session.new()
    return page.redirect("/sign-in")


# -- the dashboard --------------------------------------------------------------------------

def _period(rows: Sequence[SummaryRow]) -> dict[str, Any]:
    placed = sum(r.count for r in rows if r.status is not OrderStatus.FAILED)
    revenue: dict[str, int] = {}
    for row in rows:
        if row.status in _REVENUE:
            revenue[row.currency] = revenue.get(row.currency, 0) + row.amount
    failures: dict[tuple[str, str], int] = {}
    for row in rows:
        if row.status in (OrderStatus.FAILED, OrderStatus.CANCELLED):
            key = (row.status.value, row.failure_reason or "-")
            failures[key] = failures.get(key, 0) + row.count
    return {"placed": placed,
            "revenue": [Money(amount, currency) for currency, amount in sorted(revenue.items())],
            "failures": sorted(failures.items())}


def dashboard(page: Page) -> Response:
    platform = page.platform
    now = platform.orders.clock()
    today = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    week = today - timedelta(days=today.weekday())
    today_rows = platform.orders.summary(today)
    week_rows = platform.orders.summary(week)
    low = platform.inventory.low_stock(page.config.low_stock_threshold, limit=20)
    returns = platform.orders.open_returns(limit=20)
    with platform.order_store.unit_of_work() as uow:
        unfinished = uow.orders.unfinished(updated_before=now, limit=100)
    stuck = [o for o in unfinished
             if o.created_at <= now - timedelta(seconds=page.config.stuck_after)][:20]
    backlog = {}
    for name, store in (("orders", platform.order_store),
                        ("inventory", platform.inventory_store)):
        backlog[name] = outbox_backlog(store, most=101).pending
    return page.render(
        "dashboard.html", reports=today_rows is not None,
        today=_period(today_rows or ()), week=_period(week_rows or ()), since_week=week,
        low=low, threshold=page.config.low_stock_threshold, returns=returns, stuck=stuck,
        backlog=backlog, now=now)


# -- orders ---------------------------------------------------------------------------------

def _date(page: Page, name: str) -> datetime | None:
    value = page.query.get(name, "")
    if not value:
        return None
    if not _DATE.fullmatch(value):
        raise _invalid(name, "must be a date YYYY-MM-DD")
    try:
        day = datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        raise _invalid(name, "must be a date YYYY-MM-DD") from None
    if not 1970 <= day.year <= 9998:
        raise _invalid(name, "must be a date from 1970 to 9998")
    return day


def orders(page: Page) -> Response:
    platform = page.platform
    wanted = page.query.get("q", "").strip()
    if wanted:  # a search by id: straight to the order
        try:
            found = platform.orders.get(wanted)
        except NotFound:
            return page.render("orders.html", 404, orders=[], next_cursor=None,
                               statuses=list(OrderStatus), payments={},
                               message=f"No order has the id {wanted!r}.")
        return page.redirect(f"/orders/{found.id}")
    status = page.query.get("status") or None
    if status is not None and status not in {s.value for s in OrderStatus}:
        raise _invalid("status", "is not an order status")
    customer = page.query.get("customer") or None
    start, end = _date(page, "from"), _date(page, "to")
    cursor = page.query.get("cursor") or None
    if cursor is None and end is not None:
        cursor = encode_cursor(first_id_at("ord", end + timedelta(days=1)))
    listed = platform.orders.list(customer_id=customer,
                                  status=None if status is None else OrderStatus(status),
                                  limit=25, cursor=cursor)
    items, next_cursor = list(listed.items), listed.next_cursor
    if start is not None:
        floor = first_id_at("ord", start)
        if any(o.id < floor for o in items):
            items, next_cursor = [o for o in items if o.id >= floor], None
    return page.render("orders.html", orders=items, next_cursor=next_cursor,
                       statuses=list(OrderStatus), payments=platform.orders.payments(items),
                       message=None)


def _order_page(page: Page, order: Order, status: int = 200, *, error: str | None = None,
                fields: Sequence[str] = ()) -> Response:
    platform = page.platform
    payment = platform.orders.payment(order)
    warehouses = platform.inventory.list_warehouses()
    remaining = {line.sku: line.quantity - line.shipped_quantity - line.cancelled_quantity
                 for line in order.lines}
    return page.render(
        "order.html", status, order=order, payment=payment, warehouses=warehouses,
        remaining=remaining, shippable=order.status in _SHIPPABLE,
        refundable=payment is not None and payment.captured > payment.refunded,
        done=_done(page), error=error, fields=list(fields), key=secrets.token_urlsafe(16),
        RS=ReturnStatus, running=order.saga_step is not SagaStep.DONE)


def order(page: Page) -> Response:
    return _order_page(page, page.platform.orders.get(page.params["id"]))


def _money(page: Page, name: str, currency: str, *, zero: bool = False) -> Money | None:
    """A form's amount in major units ("12.50"), ASCII digits only; ``None`` when empty."""
    text = page.field(name)
    if not text:
        return None
    exponent = Money(0, currency).exponent
    places = rf"(\.[0-9]{{1,{exponent}}})?" if exponent else ""
    if not re.fullmatch(rf"[0-9]{{1,13}}{places}", text):
        raise _invalid(name, f"must be an amount such as {'12.50' if exponent else '1250'}, "
                       f"with at most {exponent} decimals")
    minor = int(Decimal(text).scaleb(exponent))
    if minor > 10**12:
        raise _invalid(name, "is too large")
    if minor == 0 and not zero:
        raise _invalid(name, "must be more than 0")
    return Money(minor, currency)


def _count(page: Page, name: str, *, minimum: int = 0, signed: bool = False) -> int:
    text = page.field(name)
    if not re.fullmatch(r"-?[0-9]{1,9}" if signed else r"[0-9]{1,9}", text):
        raise _invalid(name, "must be a whole number")
    value = int(text)
    if value < minimum and not signed:
        raise _invalid(name, f"must be {minimum} or more")
    return value


def _action(page: Page, name: str, summary: str, run: Any, done: str, *,
            current: Order | None = None) -> Response:
    """An order's action in two steps: the form's fields are checked and shown for
    confirmation; confirmed, the action runs and the order page says so, or shows the
    error and nothing changed. A confirmation carries the order's version as the admin saw
    it: if the order changed since (another admin shipped, refunded or cancelled; the same
    confirmation sent twice), nothing is done and the order is shown again."""
    order_id = page.params["id"]
    if current is None:  # the view did not read it already
        current = page.platform.orders.get(order_id)
    try:
        if page.field("confirmed") != "yes":
            run(dry=True)
            hidden = [(k, v) for k, values in page.form.items() if k not in ("csrf", "confirmed")
                      for v in values]
            if not page.field("action_key"):
                hidden.append(("action_key", secrets.token_urlsafe(16)))
            if not page.field("version"):  # the order as the admin sees it now
                hidden.append(("version", str(current.version)))
            return page.render("confirm.html", order=current, action=name, summary=summary,
                               hidden=hidden)
        if page.field("version") != str(current.version):
            return _order_page(page, current, 409, error=_CHANGED)
        run(dry=False)
    except ConcurrencyConflict:  # another admin's action got there in the same moment
        return _order_page(page, page.platform.orders.get(order_id), 409, error=_CHANGED)
    except CommerceError as error:
        status, message, fields = page.error(error)
        return _order_page(page, page.platform.orders.get(order_id), status, error=message,
                           fields=fields)
    return page.redirect(f"/orders/{order_id}", done=done)


def ship(page: Page) -> Response:
    order_id = page.params["id"]
    current = page.platform.orders.get(order_id)
    lines: list[ShipmentLine] = []
    for line in current.lines:
        quantity = _count(page, f"qty_{line.sku}") if page.field(f"qty_{line.sku}") else 0
        if quantity:
            lines.append(ShipmentLine(line.sku, quantity))
    carrier, tracking = page.field("carrier"), page.field("tracking_number")
    warehouse = page.field("warehouse") or None
    if not lines:
        raise _invalid("lines", "ship at least one unit")
    summary = (", ".join(f"{item.quantity} × {item.sku}" for item in lines)  # noqa: RUF001
               + f" by {carrier or '?'} (tracking {tracking or '?'})"
               + (f" from {warehouse}" if warehouse else ""))

    def run(*, dry: bool) -> None:
        if dry:
            if not carrier or not tracking:
                raise _invalid("carrier" if not carrier else "tracking_number",
                               "is required")
            return
        page.platform.checkout.ship(order_id, carrier=carrier, tracking_number=tracking,
                                    lines=lines, warehouse=warehouse)

    return _action(page, "ship", f"Ship {summary}", run, "shipped", current=current)


def deliver(page: Page) -> Response:
    order_id = page.params["id"]

    def run(*, dry: bool) -> None:
        if not dry:
            page.platform.checkout.deliver(order_id)

    return _action(page, "deliver", "Mark the order delivered", run, "delivered")


def cancel(page: Page) -> Response:
    order_id = page.params["id"]

    def run(*, dry: bool) -> None:
        if not dry:
            page.platform.checkout.cancel(order_id)

    return _action(page, "cancel", "Cancel what has not shipped: its stock is released and "
                   "its payment voided or refunded", run, "cancelled")


def refund(page: Page) -> Response:
    order_id = page.params["id"]
    current = page.platform.orders.get(order_id)
    amount = _money(page, "amount", current.currency)
    reason = page.field("reason")
    key = page.field("action_key") or None

    def run(*, dry: bool) -> None:
        if dry:
            if not reason:
                raise _invalid("reason", "is required")
            return
        page.platform.checkout.refund(order_id, amount=amount, reason=reason,
                                      idempotency_key=f"admin:{key}" if key else None)

    return _action(page, "refund", f"Refund {amount or 'everything still captured'} "
                   f"({reason or '?'})", run, "refunded", current=current)


def metadata(page: Page) -> Response:
    order_id = page.params["id"]
    key, value = page.field("key"), page.form.get("value", [""])[0]
    changes: dict[str, str | None] = {key: value or None}

    def run(*, dry: bool) -> None:
        if dry:
            if not key:
                raise _invalid("key", "is required")
            return
        page.platform.orders.update_metadata(order_id, changes)

    summary = f"Set {key} to {value!r}" if value else f"Remove {key}"
    return _action(page, "metadata", summary, run, "metadata")


def _return_action(page: Page, verb: str) -> Response:
    order_id, return_id = page.params["id"], page.params["return_id"]
    found = page.platform.orders.get_return(return_id)
    if found.order_id != order_id:
        raise NotFound("return", return_id)
    checkout = page.platform.checkout
    if verb == "receive":
        warehouse, restock = page.field("warehouse"), page.field("restock") == "yes"
        summary = (f"Receive return {return_id} at {warehouse or '?'}, "
                   + ("back into stock" if restock else "written off"))

        def run(*, dry: bool) -> None:
            if dry:
                if not warehouse:
                    raise _invalid("warehouse", "is required")
                return
            checkout.receive_return(return_id, warehouse=warehouse, restock=restock)
        done = "received"
    elif verb == "refund":
        shipping = page.field("include_shipping") == "yes"
        summary = f"Refund return {return_id}" + (" with the shipping" if shipping else "")

        def run(*, dry: bool) -> None:
            if not dry:
                checkout.refund_return(return_id, include_shipping=shipping)
        done = "return-refunded"
    else:
        reason = page.field("reason") or None
        summary = f"Reject return {return_id}" + (f" ({reason})" if reason else "")

        def run(*, dry: bool) -> None:
            if not dry:
                checkout.reject_return(return_id, reason=reason)
        done = "rejected"
    return _action(page, f"{verb}-return", summary, run, done)


def receive_return(page: Page) -> Response:
    return _return_action(page, "receive")


def refund_return(page: Page) -> Response:
    return _return_action(page, "refund")


def reject_return(page: Page) -> Response:
    return _return_action(page, "reject")


# -- catalogue and stock --------------------------------------------------------------------

def products(page: Page) -> Response:
    inventory = page.platform.inventory
    wanted = page.query.get("sku", "").strip()
    message = None
    cursor = page.query.get("cursor") or None
    if wanted:
        try:
            return page.redirect(f"/inventory/{inventory.get_product(wanted).sku}")
        except NotFound:
            message = f"No product has the SKU {wanted!r}; the list starts where it would be."
            cursor = encode_cursor(wanted)
    listed = inventory.list_products(active_only=False, limit=50, cursor=cursor)
    available = inventory.availability([p.sku for p in listed.items])
    return page.render("products.html", 404 if message else 200, products=listed.items,
                       available=available, next_cursor=listed.next_cursor, message=message,
                       done=_done(page))


def new_product(page: Page) -> Response:
    return page.render("product_new.html", error=None, fields=[], form={})


def create_product(page: Page) -> Response:
    inventory = page.platform.inventory
    sku, currency = page.field("sku"), page.field("currency").upper()
    try:
        if not re.fullmatch(r"[A-Z]{3}", currency):
            raise _invalid("currency", "must be an ISO 4217 code such as EUR")
        price = _money(page, "price", currency)
        if price is None:
            raise _invalid("price", "is required")
        try:
            inventory.get_product(sku)
        except NotFound:
            pass
        else:
            raise _invalid("sku", "a product with this SKU exists: edit it instead")
        inventory.upsert_product(sku, name=page.field("name"), price=price,
                                 active=page.field("active") == "yes")
    except CommerceError as error:
        status, message, fields = page.error(error)
        return page.render("product_new.html", status, error=message, fields=fields,
                           form={k: v[0] for k, v in page.form.items() if k != "csrf"})
    return page.redirect(f"/inventory/{sku}", done="saved")


def _inventory_page(page: Page, sku: str, status: int = 200, *, error: str | None = None,
                    fields: Sequence[str] = ()) -> Response:
    inventory = page.platform.inventory
    product = inventory.get_product(sku)
    return page.render("inventory.html", status, product=product, stock=inventory.stock(sku),
                       movements=inventory.movements(sku, limit=100),
                       warehouses=inventory.list_warehouses(), done=_done(page), error=error,
                       fields=list(fields), key=secrets.token_urlsafe(16),
                       price=_decimal(product.price))


def _decimal(money: Money) -> str:
    return str(Decimal(money.amount).scaleb(-money.exponent))


def stock(page: Page) -> Response:
    return _inventory_page(page, page.params["sku"])


def edit_product(page: Page) -> Response:
    inventory = page.platform.inventory
    sku = page.params["sku"]
    product = inventory.get_product(sku)
    try:
        price = _money(page, "price", product.price.currency)
        if price is None:
            raise _invalid("price", "is required")
        inventory.upsert_product(sku, name=page.field("name"), price=price,
                                 active=page.field("active") == "yes")
    except CommerceError as error:
        status, message, fields = page.error(error)
        return _inventory_page(page, sku, status, error=message, fields=fields)
    return page.redirect(f"/inventory/{sku}", done="saved")


def adjust(page: Page) -> Response:
    sku = page.params["sku"]
    page.platform.inventory.get_product(sku)
    try:
        delta = _count(page, "delta", signed=True)
        if delta == 0:
            raise _invalid("delta", "must not be 0")
        key = page.field("action_key")
        page.platform.inventory.adjust_stock(
            sku, page.field("warehouse"), delta=delta, reason=page.field("reason"),
            idempotency_key=f"admin:{key}" if key else None)
    except CommerceError as error:
        status, message, fields = page.error(error)
        return _inventory_page(page, sku, status, error=message, fields=fields)
    return page.redirect(f"/inventory/{sku}", done="adjusted")


def warehouses(page: Page) -> Response:
    return page.render("warehouses.html", warehouses=page.platform.inventory.list_warehouses(),
                       done=_done(page), error=None, fields=[])


def put_warehouse(page: Page) -> Response:
    try:
        page.platform.inventory.upsert_warehouse(page.field("code"), name=page.field("name"))
    except CommerceError as error:
        status, message, fields = page.error(error)
        return page.render("warehouses.html", status,
                           warehouses=page.platform.inventory.list_warehouses(), done=None,
                           error=message, fields=fields)
    return page.redirect("/warehouses", done="saved")


# -- pricing --------------------------------------------------------------------------------

def _standard(page: Page) -> StandardPricing | None:
    pricing = page.platform.checkout.pricing
    return pricing if isinstance(pricing, StandardPricing) else None


def _pricing_page(page: Page, status: int = 200, *, error: str | None = None,
                  fields: Sequence[str] = ()) -> Response:
    standard = _standard(page)
    vouchers = [] if standard is None else list(standard.rules.vouchers())
    return page.render(
        "pricing.html", status, configured=standard is not None,
        options=[] if standard is None else standard.shipping_options(None),
        rates=[] if standard is None else standard.rules.tax_rates(), vouchers=vouchers,
        used=page.platform.orders.voucher_uses([v.code for v in vouchers]),
        done=_done(page), error=error, fields=list(fields))


def pricing(page: Page) -> Response:
    return _pricing_page(page)


def _pricing_change(page: Page, change: Any) -> Response:
    standard = _standard(page)
    if standard is None:
        raise NotFound("pricing", "standard")
    try:
        change(standard)
    except CommerceError as error:
        status, message, fields = page.error(error)
        return _pricing_page(page, status, error=message, fields=fields)
    return page.redirect("/pricing", done="saved")


def put_shipping_option(page: Page) -> Response:
    def change(standard: StandardPricing) -> None:
        currency = page.field("currency").upper()
        if not re.fullmatch(r"[A-Z]{3}", currency):
            raise _invalid("currency", "must be an ISO 4217 code such as EUR")
        price = _money(page, "price", currency, zero=True)
        if price is None:
            raise _invalid("price", "is required (0 for free shipping)")
        countries = [c.strip().upper() for c in page.field("countries").split(",")
                     if c.strip()]
        standard.put_shipping_option(ShippingOption(
            code=page.field("code"), name=page.field("name"), price=price,
            countries=countries or None, active=page.field("active") == "yes"))

    return _pricing_change(page, change)


def put_tax_rate(page: Page) -> Response:
    def change(standard: StandardPricing) -> None:
        standard.put_tax_rate(TaxRate(country=page.field("country").upper(),
                                      rate_bp=_count(page, "rate_bp")))

    return _pricing_change(page, change)


def put_voucher(page: Page) -> Response:
    def change(standard: StandardPricing) -> None:
        kind = page.field("kind")
        if kind not in ("percent", "fixed"):
            raise _invalid("kind", "must be percent or fixed")
        currency = page.field("currency").upper() or "EUR"
        limit = page.field("usage_limit")
        standard.put_voucher(Voucher(
            code=page.field("code"), kind=VoucherKind(kind),
            percent_bp=_count(page, "percent_bp") if kind == "percent" else None,
            amount=_money(page, "amount", currency) if kind == "fixed" else None,
            min_subtotal=_money(page, "min_subtotal", currency),
            usage_limit=_count(page, "usage_limit", minimum=1) if limit else None,
            once_per_customer=page.field("once_per_customer") == "yes",
            active=page.field("active") == "yes", name=page.field("name") or None))

    return _pricing_change(page, change)


ROUTES: list[tuple[str, View, tuple[str, ...], bool]] = [
    ("/sign-in", sign_in_form, ("GET",), True),
    ("/sign-in", sign_in, ("POST",), True),
    ("/sign-out", sign_out, ("POST",), True),
    ("/", dashboard, ("GET",), False),
    ("/orders", orders, ("GET",), False),
    ("/orders/{id}", order, ("GET",), False),
    ("/orders/{id}/ship", ship, ("POST",), False),
    ("/orders/{id}/deliver", deliver, ("POST",), False),
    ("/orders/{id}/cancel", cancel, ("POST",), False),
    ("/orders/{id}/refund", refund, ("POST",), False),
    ("/orders/{id}/metadata", metadata, ("POST",), False),
    ("/orders/{id}/returns/{return_id}/receive", receive_return, ("POST",), False),
    ("/orders/{id}/returns/{return_id}/refund", refund_return, ("POST",), False),
    ("/orders/{id}/returns/{return_id}/reject", reject_return, ("POST",), False),
    ("/products", products, ("GET",), False),
    ("/products", create_product, ("POST",), False),
    ("/products/new", new_product, ("GET",), False),
    ("/inventory/{sku}", stock, ("GET",), False),
    ("/inventory/{sku}", edit_product, ("POST",), False),
    ("/inventory/{sku}/adjustments", adjust, ("POST",), False),
    ("/warehouses", warehouses, ("GET",), False),
    ("/warehouses", put_warehouse, ("POST",), False),
    ("/pricing", pricing, ("GET",), False),
    ("/pricing/shipping-options", put_shipping_option, ("POST",), False),
    ("/pricing/tax-rates", put_tax_rate, ("POST",), False),
    ("/pricing/vouchers", put_voucher, ("POST",), False),
]

"""The routes of the HTTP contract: each handler turns a validated call into service calls."""

from __future__ import annotations

import concurrent.futures
import json
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import attrs
from starlette.responses import Response

from commerce_core import (
    FORBIDDEN_CHARACTERS,
    FieldError,
    InvalidInput,
    Money,
    NotFound,
    Order,
    OrderStatus,
    Payment,
    PlaceOrder,
    Platform,
    Product,
    ShippingOption,
    StandardPricing,
    TaxRate,
    Voucher,
    VoucherKind,
)
from commerce_core.checkout import NotificationOutcome
from commerce_core.orders import (
    Adjustment,
    Return,
    ReturnStatus,
    SagaStep,
    ShipmentLine,
    Tax,
)
from commerce_core.webhooks import Delivery, DeliveryStatus, WebhookEndpoint, WebhookService
from commerce_core_gateway import convert
from commerce_core_gateway._schemas import converter
from commerce_core_gateway.bodies import (
    COUNTRY_PATTERN,
    AdjustedLevelOut,
    AdjustmentBody,
    AdjustmentOut,
    HistoryEntry,
    InventoryOut,
    LevelOut,
    MetadataPatchBody,
    MoneyBody,
    OrderLineOut,
    OrderOut,
    OrderPage,
    PaymentOut,
    PlaceOrderBody,
    ProductBody,
    ProductOut,
    ProductPage,
    QuoteBody,
    QuoteOut,
    ReceiveBody,
    RefundBody,
    RejectBody,
    ReturnBody,
    ReturnList,
    ReturnOut,
    ReturnRefundBody,
    ShipBody,
    ShipmentLineOut,
    ShipmentOut,
    ShippingAddressOut,
    ShippingOptionBody,
    ShippingOptionList,
    ShippingOptionOut,
    SignedMoneyOut,
    Status,
    TaxOut,
    TaxRateBody,
    TaxRateList,
    TaxRateOut,
    VoucherBody,
    VoucherList,
    VoucherOut,
    WarehouseBody,
    WarehouseOut,
    WebhookDeliveryOut,
    WebhookDeliveryPage,
    WebhookEndpointBody,
    WebhookEndpointList,
    WebhookEndpointOut,
    WebhookReceipt,
    WebhookReplayBody,
    WebhookReplayOut,
)
from commerce_core_gateway.problems import problem
from commerce_core_gateway.routing import (
    CURSOR,
    LIMIT,
    Access,
    Call,
    Endpoint,
    Query,
    Readiness,
    StoredAnswer,
    stop,
)
from commerce_core_gateway.security import Role

__all__ = ["endpoints", "order_out"]

log = logging.getLogger("commerce_core.gateway")


def _json(value: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(converter.unstructure(value)), status_code=status,
                    headers=headers, media_type="application/json")


def _money(money: Money) -> MoneyBody:
    return MoneyBody(money.amount, money.currency)


def _iso(moment: Any) -> str:
    return str(moment.isoformat().replace("+00:00", "Z"))


def _adjustments(adjustments: tuple[Adjustment, ...]) -> list[AdjustmentOut]:
    return [AdjustmentOut(a.kind.value, a.code, a.label,
                          SignedMoneyOut(a.signed, a.amount.currency)) for a in adjustments]


def _taxes(taxes: tuple[Tax, ...]) -> list[TaxOut]:
    return [TaxOut(t.country, t.rate_bp, t.inclusive, _money(t.amount)) for t in taxes]


def _shipments(order: Order) -> list[ShipmentOut]:
    """The order's parcels; one of 0.1 (no lines: the whole order) lists the order's lines."""
    pending = order.saga_step is SagaStep.SHIPPING  # the last one is not out yet
    parcels = order.shipments[:-1] if pending else order.shipments
    return [ShipmentOut(
        s.id, s.carrier, s.tracking_number, _iso(s.shipped_at),
        [ShipmentLineOut(item.sku, item.quantity) for item in s.lines] or [
            ShipmentLineOut(line.sku, line.shipped_quantity) for line in order.lines],
        s.warehouse) for s in parcels]


def order_out(platform: Platform, order: Order, payment: Payment | None = None) -> OrderOut:
    """The order resource of the contract (its payment is read unless given)."""
    return order_resource(order, payment or platform.orders.payment(order))


def order_resource(order: Order, payment: Payment | None) -> OrderOut:
    """The order resource of the contract, with its payment."""
    address = order.shipping_address
    shipments = _shipments(order)
    returned = order.returned_units
    return OrderOut(
        id=order.id, customer_id=order.customer_id, status=order.status.value,
        lines=[OrderLineOut(line.sku, line.name, line.quantity, _money(line.unit_price),
                            _money(line.total), line.shipped_quantity,
                            line.cancelled_quantity, returned.get(line.sku, 0))
               for line in order.lines],
        subtotal=_money(order.subtotal), adjustments=_adjustments(order.adjustments),
        taxes=_taxes(order.taxes), email=order.email, metadata=dict(order.metadata),
        total=_money(order.total),
        shipping_address=ShippingAddressOut(address.name, address.line1, address.line2,
                                            address.city, address.postal_code, address.country),
        payment=None if payment is None else PaymentOut(
            payment.id, payment.status.value, _money(payment.authorized),
            _money(payment.captured), _money(payment.refunded),
            None if payment.capture_before is None else _iso(payment.capture_before)),
        shipment=shipments[0] if shipments else None, shipments=shipments,
        failure_reason=order.failure_reason,
        history=[HistoryEntry(h.status.value, _iso(h.at)) for h in order.history],
        created_at=_iso(order.created_at), updated_at=_iso(order.updated_at),
    )


def return_out(found: Return) -> ReturnOut:
    """The return resource (its refund shown once it is made)."""
    refunded = found.status is ReturnStatus.REFUNDED
    return ReturnOut(
        id=found.id, order_id=found.order_id, status=found.status.value,
        lines=[ShipmentLineOut(item.sku, item.quantity) for item in found.lines],
        reason=found.reason,
        refund=_money(found.refund) if refunded and found.refund is not None else None,
        shipping_refund=(_money(found.shipping_refund)
                         if refunded and found.shipping_refund is not None else None),
        include_shipping=refunded and found.include_shipping,
        warehouse=found.warehouse if found.received_at is not None else None,
        restock=found.restock if found.received_at is not None else None,
        rejection_reason=found.rejection_reason, requested_at=_iso(found.requested_at),
        received_at=None if found.received_at is None else _iso(found.received_at),
        updated_at=_iso(found.updated_at))


def _customer(call: Call) -> str | None:
    """The customer a customer's call is limited to (``None`` for an admin). A customer
    principal always has its id (the gateway checks them): never "no limit" for one."""
    principal = call.principal
    if principal is None or principal.role is not Role.CUSTOMER:
        return None
    if not principal.customer_id:  # pragma: no cover - refused when the gateway is built
        raise stop(problem(403, "forbidden", "Forbidden", "this key names no customer"))
    return principal.customer_id


def _visible_order(call: Call) -> Order:
    """The order, if the caller may see it; another customer's order is simply not found."""
    return call.platform.orders.get(call.params["id"], customer_id=_customer(call))


# -- operations -----------------------------------------------------------------------------

def healthz(_: Call) -> Response:
    return _json(Status("ok"))


def readyz(call: Call) -> Response:
    """Both stores and the host's required checks: the first that does not answer makes the
    server not ready (503). Then the optional dependencies (the rate limits' storage, a
    broker): the server runs without them for a while (requests unlimited, events kept in
    the outboxes), so one that does not answer makes it ``degraded``, still 200: taking
    every server out of the load balancer for it would turn a degraded dependency into an
    outage. Clients get generic answers; which dependency, and why, goes to the log.

    Every check is asked at once, each on a thread of its own, within a deadline: one that
    hangs (a database or a Redis that takes the connection and never answers) must not
    hold the probe past a load balancer's timeout, and is not asked again while its run is
    still going (it holds one thread, not one per probe)."""
    def stores() -> None:
        with call.platform.order_store.unit_of_work() as orders:
            orders.orders.get("readiness-probe")
        with call.platform.inventory_store.unit_of_work() as inventory:
            inventory.products.get("readiness-probe")

    readiness = call.readiness
    begun = time.monotonic()
    required = {name: _ask(readiness, name, check)
                for name, check in {"stores": stores, **readiness.required}.items()}
    optional = {name: _ask(readiness, name, check)
                for name, check in readiness.optional.items()}
    if not all(_answered(name, run, begun, REQUIRED_DEADLINE)
               for name, run in required.items()):
        return problem(503, "not-ready", "Not ready", "a dependency does not answer",
                       headers={"Retry-After": "5"})
    degraded = [name for name, run in optional.items()
                if not _answered(name, run, begun, OPTIONAL_DEADLINE)]
    return _json(Status("degraded" if degraded else "ready"))


#: seconds ``/readyz`` waits for the stores and the required checks, and for the optional
#: dependencies, counted from its start (they run together): a load balancer's probe
#: usually gives a second
REQUIRED_DEADLINE = 0.9
OPTIONAL_DEADLINE = 0.5


def _ask(readiness: Readiness, name: str,
         check: Callable[[], None]) -> tuple[float, Future[bool]]:
    """A run of ``check`` on a thread of its own (when it began, and its answer to come),
    or the run still going from an earlier probe: a check that hangs is not started again.
    The answer always comes (false for anything the check raises, `BaseException` too)."""
    with readiness.lock:
        running = readiness.running.get(name)
        if running is not None and not running[1].done():
            return running
        run: tuple[float, Future[bool]] = (time.monotonic(), Future())
        readiness.running[name] = run
    future = run[1]

    def ask() -> None:
        answer = False
        try:
            answer = _answers(name, check)
        except BaseException:
            log.exception("readiness: %s failed", name)
        finally:  # whatever happened, the run ends
            future.set_result(answer)

    try:
        threading.Thread(target=ask, name=f"readiness-{name}", daemon=True).start()
    except BaseException:  # no thread to be had: this run is over, not hung
        future.set_result(False)
        raise
    return run


def _answered(name: str, run: tuple[float, Future[bool]], begun: float,
              deadline: float) -> bool:
    """Whether the run answered yes within ``deadline`` seconds of the probe's start and of
    its own (a run that began at an earlier probe and is overdue already: no at once)."""
    started, future = run
    wait = min(begun, started) + deadline - time.monotonic()
    try:
        return future.result(timeout=max(0.0, wait))
    except concurrent.futures.TimeoutError:
        log.warning("readiness: %s did not answer in time", name)
        return False


def _answers(name: str, check: Any) -> bool:
    try:
        check()
    except Exception as error:  # noqa: BLE001 - any failure counts; why: the log
        log.warning("readiness: %s do not answer: %s", name, error)
        return False
    return True


def _product_out(call: Call, product: Product) -> ProductOut:
    available = call.platform.inventory.availability([product.sku])[product.sku]
    return ProductOut(product.sku, product.name, _money(product.price), product.active,
                      available)


def list_products(call: Call) -> Response:
    page = call.platform.inventory.list_products(limit=call.query["limit"],
                                                 cursor=call.query["cursor"])
    available = call.platform.inventory.availability([p.sku for p in page.items])
    return _json(ProductPage(
        [ProductOut(p.sku, p.name, _money(p.price), p.active, available[p.sku])
         for p in page.items], page.next_cursor))


def get_product(call: Call) -> Response:
    product = call.platform.inventory.get_product(call.params["sku"])
    admin = call.principal is not None and call.principal.role is Role.ADMIN
    if not product.active and not admin:
        raise NotFound("product", product.sku)
    return _json(_product_out(call, product))


def put_product(call: Call) -> Response:
    body: ProductBody = call.body
    product, created = call.platform.inventory.upsert_product(
        call.params["sku"], name=body.name, price=Money(body.price.amount, body.price.currency),
        active=body.active)
    return _json(_product_out(call, product), 201 if created else 200)


def put_warehouse(call: Call) -> Response:
    body: WarehouseBody = call.body
    warehouse, created = call.platform.inventory.upsert_warehouse(call.params["code"],
                                                                  name=body.name)
    return _json(WarehouseOut(warehouse.code, warehouse.name), 201 if created else 200)


def get_inventory(call: Call) -> Response:
    stock = call.platform.inventory.stock(call.params["sku"])
    return _json(InventoryOut(
        stock.sku, [LevelOut(lv.warehouse, lv.on_hand, lv.reserved, lv.available)
                    for lv in stock.levels], stock.on_hand, stock.reserved, stock.available))


def post_adjustment(call: Call) -> Response:
    body: AdjustmentBody = call.body
    try:
        level = call.platform.inventory.adjust_stock(
            call.params["sku"], body.warehouse, delta=body.delta, reason=body.reason,
            idempotency_key=call.idempotency_key)
    except NotFound as error:
        if error.kind == "warehouse":  # a body field names it: the request is invalid
            raise InvalidInput("invalid adjustment", [
                FieldError("warehouse", f"unknown warehouse {body.warehouse!r}")]) from None
        raise
    return _json(AdjustedLevelOut(level.sku, level.warehouse, level.on_hand, level.reserved,
                                  level.available), 201)


def _customer_id(call: Call) -> str:
    principal = call.principal
    assert principal is not None, "the route is for customers"  # noqa: S101
    assert principal.customer_id is not None, "customers have an id"  # noqa: S101
    return principal.customer_id


def _place_order_command(call: Call) -> PlaceOrder:
    return convert.place_order_of(call.body, _customer_id(call))


def _sku_problems(platform: Platform, data: Any) -> list[FieldError]:
    """The unknown SKUs of an order's body that has other problems: one answer names all."""
    lines = data.get("lines") if isinstance(data, dict) else None
    if not isinstance(lines, list):
        return []
    return platform.checkout.sku_problems(
        [_Sku(line.get("sku")) if isinstance(line, dict) else None for line in lines[:100]])


@attrs.frozen
class _Sku:
    sku: object


def _place_order_fingerprint(call: Call) -> str:
    """The core's own fingerprint of the command, which its idempotency record keeps."""
    return _place_order_command(call).fingerprint()


def place_order(call: Call) -> Response:
    """The order is confirmed with its answer (201 and the order resource, made from the
    payment the checkout has in hand) stored under the key in the same transaction: no
    read of the payment and no write of the answer after it."""
    assert call.idempotency_key is not None  # noqa: S101 - the route requires one
    made: list[tuple[Order, str]] = []

    def answer(order: Order, payment: Payment) -> tuple[int, str]:
        body = json.dumps(converter.unstructure(order_resource(order, payment)))
        made.append((order, body))
        return 201, body

    order = call.platform.checkout.place_order(_place_order_command(call),
                                               idempotency_key=call.idempotency_key,
                                               answer=answer)
    if made and made[-1][0] is order:  # stored with the order that was confirmed
        return StoredAnswer(made[-1][1], status_code=201, media_type="application/json")
    return _json(order_out(call.platform, order), 201)


def quote(call: Call) -> Response:
    quoted = call.platform.checkout.quote(convert.quote_of(call.body, _customer_id(call)))
    body: QuoteBody = call.body
    return _json(QuoteOut(
        lines=[OrderLineOut(line.sku, line.name, line.quantity, _money(line.unit_price),
                            _money(line.total)) for line in quoted.lines],
        subtotal=_money(quoted.subtotal), adjustments=_adjustments(quoted.adjustments),
        taxes=_taxes(quoted.taxes), total=_money(quoted.total),
        voucher_code=quoted.voucher_code, email=body.email, metadata=body.metadata))


def patch_metadata(call: Call) -> Response:
    body: MetadataPatchBody = call.body
    order = call.platform.orders.update_metadata(call.params["id"], body.changes)
    return _json(order_out(call.platform, order))


# -- pricing configuration (the standard pricing's rules) ------------------------------------

def _standard(call: Call) -> StandardPricing:
    pricing = call.platform.checkout.pricing
    if not isinstance(pricing, StandardPricing):
        raise stop(problem(404, "not-found", "Not found",
                           "this server's pricing is not configured over HTTP"))
    return pricing


def _option_out(option: ShippingOption) -> ShippingOptionOut:
    return ShippingOptionOut(option.code, option.name, _money(option.price),
                             None if option.countries is None else sorted(option.countries),
                             option.active)


def put_shipping_option(call: Call) -> Response:
    body: ShippingOptionBody = call.body
    option = ShippingOption(code=call.params["code"], name=body.name,
                            price=Money(body.price.amount, body.price.currency),
                            countries=body.countries, active=body.active)
    created = _standard(call).put_shipping_option(option)
    return _json(_option_out(option), 201 if created else 200)


def list_shipping_options(call: Call) -> Response:
    options = _standard(call).shipping_options(call.query["country"])
    return _json(ShippingOptionList([_option_out(o) for o in options]))


def put_tax_rate(call: Call) -> Response:
    body: TaxRateBody = call.body
    rate = TaxRate(country=call.params["country"], rate_bp=body.rate_bp)
    created = _standard(call).put_tax_rate(rate)
    return _json(TaxRateOut(rate.country, rate.rate_bp), 201 if created else 200)


def list_tax_rates(call: Call) -> Response:
    rates = _standard(call).rules.tax_rates()
    return _json(TaxRateList([TaxRateOut(r.country, r.rate_bp) for r in rates]))


def _voucher_out(voucher: Voucher, used: int) -> VoucherOut:
    return VoucherOut(
        voucher.code, voucher.kind.value, voucher.percent_bp,
        None if voucher.amount is None else _money(voucher.amount),
        None if voucher.min_subtotal is None else _money(voucher.min_subtotal),
        voucher.usage_limit, voucher.once_per_customer, voucher.active, voucher.name, used)


def _money_of(body: MoneyBody | None) -> Money | None:
    return None if body is None else Money(body.amount, body.currency)


def put_voucher(call: Call) -> Response:
    body: VoucherBody = call.body
    voucher = Voucher(
        code=call.params["code"], kind=VoucherKind(body.kind), percent_bp=body.percent_bp,
        amount=_money_of(body.amount), min_subtotal=_money_of(body.min_subtotal),
        usage_limit=body.usage_limit, once_per_customer=body.once_per_customer,
        active=body.active, name=body.name)
    created = _standard(call).put_voucher(voucher)
    used = call.platform.orders.voucher_uses([voucher.code])[voucher.code]
    return _json(_voucher_out(voucher, used), 201 if created else 200)


def get_voucher(call: Call) -> Response:
    voucher = _standard(call).rules.voucher(call.params["code"])
    if voucher is None:
        raise NotFound("voucher", call.params["code"])
    used = call.platform.orders.voucher_uses([voucher.code])[voucher.code]
    return _json(_voucher_out(voucher, used))


def list_vouchers(call: Call) -> Response:
    vouchers = _standard(call).rules.vouchers()
    used = call.platform.orders.voucher_uses([v.code for v in vouchers])
    return _json(VoucherList([_voucher_out(v, used[v.code]) for v in vouchers]))


_STATUSES = [s.value for s in OrderStatus]


def list_orders(call: Call) -> Response:
    principal = call.principal
    assert principal is not None  # noqa: S101 - by access
    customer = (_customer(call) if principal.role is Role.CUSTOMER
                else call.query["customer_id"])
    status = call.query["status"]
    statuses: list[OrderStatus] | None = (
        [OrderStatus(s) for s in dict.fromkeys(status.split(","))] if status else None)
    if statuses is None and principal.role is Role.CUSTOMER:
        # a customer's own list leaves their failed attempts out, unless asked for them
        statuses = [s for s in OrderStatus if s is not OrderStatus.FAILED]
    page = call.platform.orders.list(
        customer_id=customer, status=statuses, limit=call.query["limit"],
        cursor=call.query["cursor"])
    payments = call.platform.orders.payments(page.items)  # one read for the whole page
    return _json(OrderPage([order_out(call.platform, o, payments.get(o.id)) for o in page.items],
                           page.next_cursor))


def get_order(call: Call) -> Response:
    return _json(order_out(call.platform, _visible_order(call)))


def cancel_order(call: Call) -> Response:
    order = _visible_order(call)
    return _json(order_out(call.platform, call.platform.checkout.cancel(order.id)))


def ship_order(call: Call) -> Response:
    body: ShipBody = call.body
    lines = (None if body.lines is None
             else [ShipmentLine(line.sku, line.quantity) for line in body.lines])
    order = call.platform.checkout.ship(call.params["id"], carrier=body.carrier,
                                        tracking_number=body.tracking_number, lines=lines,
                                        warehouse=body.warehouse)
    return _json(order_out(call.platform, order))


def deliver_order(call: Call) -> Response:
    return _json(order_out(call.platform, call.platform.checkout.deliver(call.params["id"])))


def refund_order(call: Call) -> Response:
    body: RefundBody = call.body
    amount = None if body.amount is None else Money(body.amount.amount, body.amount.currency)
    order = call.platform.checkout.refund(call.params["id"], amount=amount, reason=body.reason,
                                          idempotency_key=call.idempotency_key)
    return _json(order_out(call.platform, order))


def request_return(call: Call) -> Response:
    lines, reason = convert.request_return_of(call.body)
    found = call.platform.checkout.request_return(
        call.params["id"], lines=lines, reason=reason, customer_id=_customer(call))
    return _json(return_out(found), 201)


def list_returns(call: Call) -> Response:
    found = call.platform.orders.returns(call.params["id"], customer_id=_customer(call))
    return _json(ReturnList([return_out(r) for r in found]))


def get_return(call: Call) -> Response:
    return _json(return_out(call.platform.orders.get_return(call.params["id"],
                                                            customer_id=_customer(call))))


def receive_return(call: Call) -> Response:
    body: ReceiveBody = call.body
    return _json(return_out(call.platform.checkout.receive_return(
        call.params["id"], warehouse=body.warehouse, restock=body.restock)))


def refund_return(call: Call) -> Response:
    body: ReturnRefundBody = call.body
    return _json(return_out(call.platform.checkout.refund_return(
        call.params["id"], include_shipping=body.include_shipping)))


def reject_return(call: Call) -> Response:
    body: RejectBody = call.body
    return _json(return_out(call.platform.checkout.reject_return(call.params["id"],
                                                                 reason=body.reason)))


def payment_webhook(call: Call) -> Response:
    provider = call.params["provider"]
    parser = call.webhooks.get(provider)
    if parser is None:
        raise stop(problem(404, "not-found", "Not found",
                           f"no webhooks are configured for {provider!r}"))
    # InvalidSignature, InvalidNotification: 400, nothing changed
    notification = parser.parse(call.raw, call.headers)
    outcome = (None if notification is None
               else call.platform.checkout.apply_notification(notification))
    if outcome is NotificationOutcome.DEFERRED:  # the order is mid-step: send it again later
        return problem(503, "notification-deferred", "Try again later",
                       "the order this event is about is being changed; deliver it again",
                       headers={"Retry-After": "5"})
    return _json(WebhookReceipt(received=True,
                                outcome="ignored" if outcome is None else outcome.value))


# -- outbound webhooks ------------------------------------------------------------------------

def _webhooks(call: Call) -> WebhookService:
    webhooks = call.platform.webhooks
    if webhooks is None:
        raise stop(problem(404, "not-found", "Not found",
                           "this server's order store keeps no webhook endpoints"))
    return webhooks


def _endpoint_out(endpoint: WebhookEndpoint) -> WebhookEndpointOut:
    return WebhookEndpointOut(endpoint.id, endpoint.url, list(endpoint.events), endpoint.active,
                              _iso(endpoint.created_at), _iso(endpoint.updated_at))


def _delivery_out(delivery: Delivery) -> WebhookDeliveryOut:
    pending = delivery.status is DeliveryStatus.PENDING
    return WebhookDeliveryOut(
        delivery.id, delivery.event_id, delivery.event_type, delivery.status.value,
        delivery.attempts, delivery.response_status, delivery.last_error,
        _iso(delivery.created_at),
        None if delivery.last_attempt_at is None else _iso(delivery.last_attempt_at),
        _iso(delivery.next_attempt_at) if pending else None,
        None if delivery.delivered_at is None else _iso(delivery.delivered_at))


def put_webhook_endpoint(call: Call) -> Response:
    body: WebhookEndpointBody = call.body
    endpoint, created = _webhooks(call).put_endpoint(
        call.params["id"], url=body.url, secret=body.secret, events=body.events,
        active=body.active)
    return _json(_endpoint_out(endpoint), 201 if created else 200)


def get_webhook_endpoint(call: Call) -> Response:
    return _json(_endpoint_out(_webhooks(call).endpoint(call.params["id"])))


def list_webhook_endpoints(call: Call) -> Response:
    return _json(WebhookEndpointList([_endpoint_out(e) for e in _webhooks(call).endpoints()]))


def list_webhook_deliveries(call: Call) -> Response:
    page = _webhooks(call).deliveries(call.params["id"], limit=call.query["limit"],
                                      cursor=call.query["cursor"])
    return _json(WebhookDeliveryPage([_delivery_out(d) for d in page.items], page.next_cursor))


def replay_webhook_deliveries(call: Call) -> Response:
    body: WebhookReplayBody = call.body
    return _json(WebhookReplayOut(_webhooks(call).replay(call.params["id"],
                                                         body.delivery_ids)))


def endpoints() -> list[Endpoint]:
    """The route table of the HTTP contract (``api-contract.md``)."""
    one = f"({'|'.join(_STATUSES)})"
    status_q = Query("status", {
        "type": "string", "maxLength": 200, "pattern": f"^{one}(,{one})*$",
        "description": "one status, or several separated by commas; a customer's list "
                       "leaves out failed orders unless they are asked for"})
    customer_q = Query("customer_id", {"type": "string", "minLength": 1, "maxLength": 255,
                                       "pattern": f"^[^{FORBIDDEN_CHARACTERS}]+$"})
    country_q = Query("country", {"type": "string", "pattern": COUNTRY_PATTERN,
                                  "description": "only the options that ship there"})
    a = Access
    return [
        Endpoint("GET", "/healthz", "healthz", "The process is up", a.PUBLIC, healthz,
                 Status, limited=False),
        Endpoint("GET", "/readyz", "readyz", "Both stores answer", a.PUBLIC, readyz, Status,
                 errors=frozenset({503}), limited=False),
        Endpoint("GET", "/v1/products", "list_products", "Active products, a page at a time",
                 a.PUBLIC, list_products, ProductPage, query=(LIMIT, CURSOR)),
        Endpoint("GET", "/v1/products/{sku}", "get_product", "One product", a.PUBLIC,
                 get_product, ProductOut, errors=frozenset({404})),
        Endpoint("PUT", "/v1/products/{sku}", "put_product", "Create or update a product",
                 a.ADMIN, put_product, ProductOut, (200, 201), body=ProductBody),
        Endpoint("PUT", "/v1/warehouses/{code}", "put_warehouse",
                 "Create or update a warehouse", a.ADMIN, put_warehouse, WarehouseOut,
                 (200, 201), body=WarehouseBody),
        Endpoint("GET", "/v1/inventory/{sku}", "get_inventory", "Stock of a SKU per warehouse",
                 a.ADMIN, get_inventory, InventoryOut, errors=frozenset({404})),
        Endpoint("POST", "/v1/inventory/{sku}/adjustments", "adjust_stock",
                 "Change on-hand stock with a reason", a.ADMIN, post_adjustment,
                 AdjustedLevelOut, (201,), body=AdjustmentBody, errors=frozenset({404, 409}),
                 idempotent=True, key_required=True),
        Endpoint("POST", "/v1/orders", "place_order", "Place an order", a.CUSTOMER,
                 place_order, OrderOut, (201,), body=PlaceOrderBody,
                 errors=frozenset({402, 409, 503}), checkout=True, idempotent=True,
                 key_required=True, core_keyed=True, fingerprint=_place_order_fingerprint,
                 more_errors=_sku_problems),
        Endpoint("POST", "/v1/quotes", "quote", "Price an order as placing it would, "
                 "reserving and redeeming nothing", a.CUSTOMER, quote, QuoteOut,
                 body=QuoteBody, errors=frozenset({503}), checkout=True,
                 more_errors=_sku_problems),
        Endpoint("PATCH", "/v1/orders/{id}/metadata", "patch_order_metadata",
                 "Set (a string) or remove (null) keys of an order's metadata", a.ADMIN,
                 patch_metadata, OrderOut, body=MetadataPatchBody,
                 errors=frozenset({404, 409})),
        Endpoint("GET", "/v1/shipping-options", "list_shipping_options",
                 "The active shipping options, for a destination if given", a.PUBLIC,
                 list_shipping_options, ShippingOptionList, query=(country_q,),
                 errors=frozenset({404})),
        Endpoint("PUT", "/v1/shipping-options/{code}", "put_shipping_option",
                 "Create or update a shipping option", a.ADMIN, put_shipping_option,
                 ShippingOptionOut, (200, 201), body=ShippingOptionBody,
                 errors=frozenset({404})),
        Endpoint("GET", "/v1/tax-rates", "list_tax_rates", "The tax rates by country",
                 a.PUBLIC, list_tax_rates, TaxRateList, errors=frozenset({404})),
        Endpoint("PUT", "/v1/tax-rates/{country}", "put_tax_rate",
                 "Set the tax rate of a destination country", a.ADMIN, put_tax_rate,
                 TaxRateOut, (200, 201), body=TaxRateBody, errors=frozenset({404})),
        Endpoint("GET", "/v1/vouchers", "list_vouchers", "Every voucher, with its uses",
                 a.ADMIN, list_vouchers, VoucherList, errors=frozenset({404})),
        Endpoint("GET", "/v1/vouchers/{code}", "get_voucher", "One voucher, with its uses",
                 a.ADMIN, get_voucher, VoucherOut, errors=frozenset({404})),
        Endpoint("PUT", "/v1/vouchers/{code}", "put_voucher", "Create or update a voucher",
                 a.ADMIN, put_voucher, VoucherOut, (200, 201), body=VoucherBody,
                 errors=frozenset({404})),
        Endpoint("GET", "/v1/orders", "list_orders", "Orders, newest first", a.AUTHENTICATED,
                 list_orders, OrderPage, query=(LIMIT, CURSOR, status_q, customer_q)),
        Endpoint("GET", "/v1/orders/{id}", "get_order", "One order", a.AUTHENTICATED,
                 get_order, OrderOut, errors=frozenset({404})),
        Endpoint("POST", "/v1/orders/{id}/cancel", "cancel_order",
                 "Cancel a confirmed order", a.AUTHENTICATED, cancel_order, OrderOut,
                 errors=frozenset({404, 409, 503}), idempotent=True),
        Endpoint("POST", "/v1/orders/{id}/ship", "ship_order",
                 "Ship a confirmed order: capture and commit stock", a.ADMIN, ship_order,
                 OrderOut, body=ShipBody, errors=frozenset({402, 404, 409, 503}),
                 idempotent=True),
        Endpoint("POST", "/v1/orders/{id}/deliver", "deliver_order",
                 "Mark a shipped order delivered", a.ADMIN, deliver_order, OrderOut,
                 errors=frozenset({404, 409}), idempotent=True),
        Endpoint("POST", "/v1/orders/{id}/refund", "refund_order",
                 "Refund part or all of a capture", a.ADMIN, refund_order, OrderOut,
                 body=RefundBody, errors=frozenset({402, 404, 409, 503}), idempotent=True,
                 key_required=True),
        Endpoint("POST", "/v1/orders/{id}/returns", "request_return",
                 "Ask to send back shipped units", a.AUTHENTICATED, request_return, ReturnOut,
                 (201,), body=ReturnBody, errors=frozenset({404, 409, 503}), idempotent=True),
        Endpoint("GET", "/v1/orders/{id}/returns", "list_returns",
                 "The returns of an order, oldest first", a.AUTHENTICATED, list_returns,
                 ReturnList, errors=frozenset({404})),
        Endpoint("GET", "/v1/returns/{id}", "get_return", "One return", a.AUTHENTICATED,
                 get_return, ReturnOut, errors=frozenset({404})),
        Endpoint("POST", "/v1/returns/{id}/receive", "receive_return",
                 "The goods of a return arrived: back in stock, or written off", a.ADMIN,
                 receive_return, ReturnOut, body=ReceiveBody,
                 errors=frozenset({402, 404, 409, 503}), idempotent=True),
        Endpoint("POST", "/v1/returns/{id}/refund", "refund_return",
                 "Refund a received return its share of what was paid", a.ADMIN,
                 refund_return, ReturnOut, body=ReturnRefundBody, body_optional=True,
                 errors=frozenset({402, 404, 409, 503}), idempotent=True, key_required=True),
        Endpoint("POST", "/v1/returns/{id}/reject", "reject_return", "Refuse a return",
                 a.ADMIN, reject_return, ReturnOut, body=RejectBody, body_optional=True,
                 errors=frozenset({402, 404, 409, 503}), idempotent=True),
        Endpoint("GET", "/v1/webhook-endpoints", "list_webhook_endpoints",
                 "Every outbound webhook endpoint", a.ADMIN, list_webhook_endpoints,
                 WebhookEndpointList, errors=frozenset({404})),
        Endpoint("PUT", "/v1/webhook-endpoints/{id}", "put_webhook_endpoint",
                 "Create or replace an outbound webhook endpoint", a.ADMIN,
                 put_webhook_endpoint, WebhookEndpointOut, (200, 201),
                 body=WebhookEndpointBody, errors=frozenset({404})),
        Endpoint("GET", "/v1/webhook-endpoints/{id}", "get_webhook_endpoint",
                 "One outbound webhook endpoint", a.ADMIN, get_webhook_endpoint,
                 WebhookEndpointOut, errors=frozenset({404})),
        Endpoint("GET", "/v1/webhook-endpoints/{id}/deliveries", "list_webhook_deliveries",
                 "An endpoint's delivery log, newest first", a.ADMIN, list_webhook_deliveries,
                 WebhookDeliveryPage, query=(LIMIT, CURSOR), errors=frozenset({404})),
        Endpoint("POST", "/v1/webhook-endpoints/{id}/replay", "replay_webhook_deliveries",
                 "Send an endpoint's failed deliveries (dead letters) again", a.ADMIN,
                 replay_webhook_deliveries, WebhookReplayOut, body=WebhookReplayBody,
                 body_optional=True, errors=frozenset({404})),
        Endpoint("POST", "/v1/webhooks/payments/{provider}", "payment_webhook",
                 "A payment provider's signed event (verified, applied once)", a.PUBLIC,
                 payment_webhook, WebhookReceipt, errors=frozenset({400, 404, 503}),
                 limited=False),
    ]

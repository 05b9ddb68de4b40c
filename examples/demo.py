"""The commerce-core walk-through: a shop on two SQLite files, customers buying, an admin at work.

Run it with ``make demo`` (or ``python examples/demo.py [FOLDER]``). It starts from empty
databases each time, so the account it prints is always the same story.
"""

from __future__ import annotations

import json
import secrets
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from commerce_core import (
    Address,
    CommerceError,
    Money,
    Order,
    OrderItem,
    PlaceOrder,
    Platform,
    QuoteOrder,
    ReturnLine,
    ShipmentLine,
    ShippingOption,
    StandardPricing,
    TaxRate,
    Voucher,
    VoucherKind,
)
from commerce_core.checkout import Quote
from commerce_core.errors import InvalidSignature
from commerce_core.events import InProcessPublisher
from commerce_core.testing import check_invariants
from commerce_core.webhooks import SIGNATURE_HEADER, WebhookService, verify
from commerce_core_sqlalchemy import SqlAlchemyOrderStore, SqlAlchemyPricingRules


def say(text: str = "") -> None:
    print(text, flush=True)


def _address(customer: str) -> Address:
    return Address(customer.title(), "Hauptstraße 1", "Berlin", "10115", "DE")


def breakdown(priced: Order | Quote) -> str:
    """Subtotal, each adjustment and tax, and the total, on one line."""
    parts = [f"lines {priced.subtotal}"]
    parts += [f"{a.kind.value} {a.code} {'-' if a.signed < 0 else '+'}{a.amount}"
              for a in priced.adjustments]
    parts += [f"VAT {t.rate_bp / 100:g} % {'incl.' if t.inclusive else '+'}{t.amount}"
              for t in priced.taxes]
    return ", ".join(parts) + f" = {priced.total}"


def buy(platform: Platform, customer: str, lines: list[tuple[str, int]], token: str,
        key: str, *, shipping: str = "standard", voucher: str | None = None) -> str | None:
    """One customer checkout; prints what happened and returns the order id."""
    command = PlaceOrder(
        customer_id=customer, lines=[OrderItem(sku, qty) for sku, qty in lines],
        payment_token=token, shipping_address=_address(customer), shipping_option=shipping,
        voucher_code=voucher, email=f"{customer}@example.com",
    )
    wanted = ", ".join(f"{qty} × {sku}" for sku, qty in lines)
    if voucher is not None:
        wanted += f" + {voucher}"
    try:
        order = platform.checkout.place_order(command, idempotency_key=key)
    except CommerceError as error:
        order_id = getattr(error, "order_id", None)
        say(f"  ✗ {customer:<6} {wanted:<22} paying with {token:<16} -> {error.code}: {error}")
        return order_id
    say(f"  ✓ {customer:<6} {wanted:<22} paying with {token:<16} -> order {order.id} "
        f"{order.status}")
    say(f"      {breakdown(order)}")
    return order.id


CATALOGUE = [("MUG-01", "Stoneware mug", 1250), ("POT-01", "Cast-iron teapot", 3900),
             ("TEA-01", "Sencha, 100 g", 800)]


def set_up_catalogue(shop: Platform) -> None:
    shop.inventory.upsert_warehouse("BER", name="Berlin")
    shop.inventory.upsert_warehouse("AMS", name="Amsterdam")
    for sku, name, cents in CATALOGUE:
        shop.inventory.upsert_product(sku, name=name, price=Money(cents, "EUR"))
    for sku, warehouse, units in [("MUG-01", "BER", 6), ("MUG-01", "AMS", 4),
                                  ("POT-01", "BER", 2), ("TEA-01", "AMS", 40)]:
        shop.inventory.adjust_stock(sku, warehouse, delta=units, reason="initial stock")
        say(f"  + {units:>2} × {sku} into {warehouse}")


def final_stock(shop: Platform) -> None:
    say("\nFinal stock:")
    say(f"  {'sku':<8} {'warehouse':<10} {'on hand':>8} {'reserved':>9} {'available':>10}")
    for sku, _, _ in CATALOGUE:
        for level in shop.inventory.stock(sku).levels:
            say(f"  {sku:<8} {level.warehouse:<10} {level.on_hand:>8} {level.reserved:>9} "
                f"{level.available:>10}")
    low = ", ".join(f"{sku} ({n} left)" for sku, n in shop.inventory.low_stock(3))
    say(f"\nLow stock (3 or fewer available): {low or 'none'}")


def ship_in_parcels(shop: Platform) -> None:
    """A big order reserved in both warehouses leaves in two parcels, one from each."""
    say("\nFrank's big order is reserved in both warehouses and ships in two parcels:")
    frank = buy(shop, "frank", [("MUG-01", 6), ("TEA-01", 2)], "tok_visa", "frank-1")
    if frank is None:
        raise SystemExit("the demo's good orders failed; see above")
    where = ", ".join(f"{line.quantity} × {line.sku} in {line.warehouse}" for line in
                      shop.inventory.get_reservation(f"res_{frank}").lines)
    say(f"  reserved: {where}")
    first = shop.checkout.ship(frank, carrier="DHL", tracking_number="JD014600107",
                               lines=[ShipmentLine("MUG-01", 2)], warehouse="BER")
    paid = shop.orders.payment(first)
    say(f"  parcel 1 from BER, 2 × MUG-01 (DHL JD014600107): order {first.status}, "
        f"{paid.captured if paid else '?'} captured at the first parcel")
    rest = shop.checkout.ship(frank, carrier="UPS", tracking_number="1Z999AA10123456784")
    parcels = "; ".join(", ".join(f"{item.quantity} × {item.sku}" for item in parcel.lines)
                        for parcel in rest.shipments)
    say(f"  parcel 2, the rest (UPS 1Z999AA10123456784): order {rest.status}; "
        f"{len(rest.shipments)} parcels: {parcels}")
    take_back(shop, frank)


def take_back(shop: Platform, order_id: str) -> None:
    """Two mugs of a shipped order come back: received into stock, refunded their share."""
    say("\nFrank sends two mugs back:")
    def in_ams() -> int:
        return sum(level.on_hand for level in shop.inventory.stock("MUG-01").levels
                   if level.warehouse == "AMS")

    on_hand = in_ams()
    asked = shop.checkout.request_return(order_id, lines=[ReturnLine("MUG-01", 2)],
                                         reason="two too many", customer_id="frank")
    say(f"  return  {asked.id}: {asked.status}, 2 × MUG-01 ({asked.reason})")
    received = shop.checkout.receive_return(asked.id, warehouse="AMS", restock=True)
    (booked, *_) = shop.inventory.movements("MUG-01")
    say(f"  receive into AMS: {received.status}; MUG-01 on hand in AMS {on_hand} → "
        f"{in_ams()} (ledger: {booked.delta:+d}, "
        f"reason {booked.reason}, reference {booked.reference})")
    refunded = shop.checkout.refund_return(asked.id)
    payment = shop.orders.payment(shop.orders.get(order_id))
    say(f"  refund: {refunded.status}, {refunded.refund} (their share of what was paid, "
        f"VAT included, no shipping); payment {payment.refunded if payment else '?'} "
        "refunded")


def set_up_pricing(shop: Platform) -> None:
    """Shipping options, VAT and a welcome voucher, kept in the order database."""
    assert isinstance(shop.order_store, SqlAlchemyOrderStore)  # noqa: S101 - from sqlite URLs
    pricing = StandardPricing(SqlAlchemyPricingRules(shop.order_store.engine))
    shop.checkout.pricing = pricing
    pricing.put_shipping_option(ShippingOption(
        code="standard", name="Standard (2-4 days)", price=Money(495, "EUR"),
        countries=["DE", "AT", "NL"]))
    pricing.put_shipping_option(ShippingOption(
        code="express", name="Express (next day)", price=Money(995, "EUR"), countries=["DE"]))
    pricing.put_tax_rate(TaxRate(country="DE", rate_bp=1900))
    pricing.put_tax_rate(TaxRate(country="NL", rate_bp=2100))
    pricing.put_voucher(Voucher(code="WELCOME10", kind=VoucherKind.PERCENT, percent_bp=1000,
                                usage_limit=100, once_per_customer=True,
                                name="Welcome, 10 % off"))
    say("  shipping: standard 4.95 EUR (DE, AT, NL), express 9.95 EUR (DE); "
        "VAT DE 19 %, NL 21 %, added to prices;")
    say("  voucher WELCOME10: 10 % off the lines, once per customer, 100 uses")


@contextmanager
def erp_receiver(secret: str) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """Another system (an ERP) listening for webhooks on a local port: it checks each
    request's signature, as a receiver should, and keeps what verified."""
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            try:
                verify(secret, body, self.headers.get(SIGNATURE_HEADER), now=time.time())
            except InvalidSignature:
                self.send_response(400)
            else:
                received.append(json.loads(body))
                self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hooks", received
    finally:
        server.shutdown()
        server.server_close()


def send_webhooks(shop: Platform, webhooks: WebhookService) -> None:
    """What `BackgroundRunner(shop, webhooks=...)` does on its threads: the outbox relays
    queue every event for the endpoints that want it, then what is due is sent."""
    relay = InProcessPublisher()
    relay.subscribe("*", webhooks.enqueue)  # type: ignore[arg-type]  # returns a count
    for one in shop.outbox_relays(lambda: relay):
        while one.run_once():
            pass
    webhooks.deliver_due()


def main(folder: Path) -> int:
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("orders.db", "inventory.db"):
        for suffix in ("", "-wal", "-shm"):
            (folder / f"{name}{suffix}").unlink(missing_ok=True)

    say(f"commerce-core demo: order database {folder / 'orders.db'}, "
        f"inventory database {folder / 'inventory.db'}, sandbox payments\n")
    with Platform.from_urls(
        orders=f"sqlite:///{folder / 'orders.db'}",
        inventory=f"sqlite:///{folder / 'inventory.db'}",
        payments="sandbox://",
        reservation_ttl=timedelta(minutes=15),
    ) as shop:
        say("Admin sets up two warehouses, a catalogue and stock:")
        set_up_catalogue(shop)
        with erp_receiver(secret := secrets.token_urlsafe(24)) as (erp_url, erp_got):
            if shop.webhooks is None:  # pragma: no cover - the SQLite order store keeps them
                raise SystemExit("this order store keeps no webhook endpoints")
            shop.webhooks.put_endpoint("erp", url=erp_url, secret=secret, events=[
                "order.shipped", "order.partially_shipped", "order.refunded", "return.*"])
            say("  and sends shipping, refund and return events to the ERP as signed "
                "webhooks (endpoint erp)")
            _story(shop)
            send_webhooks(shop, shop.webhooks)
            say(f"\nThe ERP received {len(erp_got)} signed webhooks, each verified: "
                + ", ".join(body["type"] for body in erp_got))
        check_invariants(shop.order_store, shop.inventory_store, shop.payment_gateway,  # type: ignore[arg-type]
                         voucher_limits={"WELCOME10": 100})
        say("\nEvery invariant holds: no oversell, ledger = on hand, no authorization "
            "without its order, every payment for its order's total, vouchers within limits.")
    return 0


def _story(shop: Platform) -> None:
    """Pricing, customers buying, the admin at work, the account."""
    say("\nAdmin sets up shipping, VAT and a voucher:")
    set_up_pricing(shop)

    say("\nAlice's basket, quoted before she pays (nothing reserved, nothing redeemed):")
    quoted = shop.checkout.quote(QuoteOrder(
        customer_id="alice", lines=[OrderItem("MUG-01", 2), OrderItem("POT-01", 1)],
        shipping_address=_address("alice"), shipping_option="express",
        voucher_code="welcome10"))
    say(f"  {breakdown(quoted)}")

    say("\nCustomers check out:")
    alice = buy(shop, "alice", [("MUG-01", 2), ("POT-01", 1)], "tok_visa", "alice-1",
                shipping="express", voucher="welcome10")
    buy(shop, "bob", [("POT-01", 3)], "tok_visa", "bob-1")
    buy(shop, "carol", [("TEA-01", 5)], "tok_declined", "carol-1")
    dave = buy(shop, "dave", [("MUG-01", 7), ("TEA-01", 2)], "tok_flaky", "dave-1")
    buy(shop, "erin", [("TEA-01", 1)], "tok_timeout", "erin-1")
    say("  ↻ alice's browser retries her request with the same idempotency key:")
    again = buy(shop, "alice", [("MUG-01", 2), ("POT-01", 1)], "tok_visa", "alice-1",
                shipping="express", voucher="welcome10")
    say(f"    same order, charged once, voucher used once: {again == alice}")
    say("  alice tries her welcome voucher a second time:")
    buy(shop, "alice", [("TEA-01", 1)], "tok_visa", "alice-2", voucher="WELCOME10")

    if alice is None or dave is None:
        raise SystemExit("the demo's good orders failed; see above")
    say("\nAdmin works the orders:")
    shipped = shop.checkout.ship(alice, carrier="DHL", tracking_number="JD014600003")
    say(f"  ship    {alice}: {shipped.status}, payment captured, DHL JD014600003")
    shop.checkout.deliver(alice)
    refunded = shop.checkout.refund(alice, amount=Money(1250, "EUR"), reason="one mug broken")
    payment = shop.orders.payment(refunded)
    say(f"  refund  {alice}: 12.50 EUR for a broken mug -> order {refunded.status}, "
        f"payment {payment.status} ({payment.refunded} of {payment.captured})"
        if payment else "")
    cancelled = shop.checkout.cancel(dave)
    say(f"  cancel  {dave}: {cancelled.status}, stock released, authorization voided")
    ship_in_parcels(shop)

    say("\nOrders, in the order they were placed:")
    for order in reversed(shop.orders.list(limit=100).items):
        reason = f" ({order.failure_reason})" if order.failure_reason else ""
        trail = " → ".join(h.status for h in order.history)
        say(f"  {order.id}  {order.customer_id:<6} {order.total!s:>10}  {trail}{reason}")

    report = shop.checkout.recover()
    say(f"\nRecovery sweep: {report.examined} unfinished sagas, "
        f"{report.expired_reservations} stale reservations.")

    final_stock(shop)


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("var/demo")))

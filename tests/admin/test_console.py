"""The admin console over HTTP (no browser): who gets in, what a form must carry, what every
page sends, and that each action goes through the services and shows their refusals."""

from __future__ import annotations

import asyncio
import html
import re
import time
import urllib.parse
from collections.abc import Iterator, MutableMapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from limits.errors import StorageError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Mount

from commerce_core import (
    ConcurrencyConflict,
    InvalidInput,
    Money,
    OrderStatus,
    PaymentDeclined,
    Platform,
)
from commerce_core.orders import ReturnLine, ShipmentLine
from commerce_core_admin import AdminConfig, create_admin
from commerce_core_gateway import Principal
from commerce_server.asgi import create_app
from tests.conftest import order, seed

ADMIN, ALICE = "admin-key-for-the-console-tests", "alice-key-for-the-console-tests"
KEYS = {ADMIN: Principal.admin(), ALICE: Principal.customer("alice")}
SECRET = "s" * 40


def _app(platform: Platform, **options: Any) -> Starlette:
    config = AdminConfig(session_secret=SECRET, api_keys=KEYS, **options)
    return Starlette(routes=[Mount("/admin", app=create_admin(platform, config))])


class Browser:
    """An httpx client that keeps the console's cookie and reads its forms' tokens."""

    def __init__(self, app: Starlette, base: str = "http://shop.test") -> None:
        self.client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base)
        self.loop = asyncio.new_event_loop()

    def get(self, path: str, **params: str) -> httpx.Response:
        return self.loop.run_until_complete(self.client.get(path, params=params or None))

    def post(self, path: str, data: dict[str, str] | list[tuple[str, str]]) -> httpx.Response:
        """A form post, as a browser sends it (fields in their order, repeats kept)."""
        pairs = list(data.items()) if isinstance(data, dict) else data
        return self.loop.run_until_complete(self.client.post(
            path, content=urllib.parse.urlencode(pairs),
            headers={"content-type": "application/x-www-form-urlencoded"}))

    def token(self, path: str = "/admin/sign-in") -> str:
        found = re.search(r'name="csrf" value="([^"]+)"', self.get(path).text)
        assert found, f"no form token on {path}"
        return found.group(1)

    def sign_in(self, key: str = ADMIN) -> httpx.Response:
        return self.post("/admin/sign-in", {"csrf": self.token(), "key": key,
                                            "next": "/admin/orders"})

    def close(self) -> None:
        self.loop.run_until_complete(self.client.aclose())
        self.loop.close()


@pytest.fixture
def stocked(tmp_path: Path) -> Iterator[Platform]:
    """A shop on SQLite files and the wall clock (the console's "today" is the real one)."""
    with Platform.from_urls(orders=f"sqlite:///{tmp_path}/orders.db",
                            inventory=f"sqlite:///{tmp_path}/inventory.db",
                            payments="sandbox://") as platform:
        seed(platform)
        yield platform


@pytest.fixture
def browser(stocked: Platform) -> Iterator[Browser]:
    opened = Browser(_app(stocked))
    yield opened
    opened.close()


@pytest.fixture
def admin(browser: Browser) -> Browser:
    assert browser.sign_in().status_code == 303
    return browser


PAGES = ["/admin/", "/admin/orders", "/admin/products", "/admin/products/new",
         "/admin/inventory/MUG", "/admin/warehouses", "/admin/pricing"]


@pytest.mark.parametrize("path", PAGES)
def test_anonymous_visitors_are_sent_to_sign_in_and_see_no_page(browser: Browser,
                                                                  path: str) -> None:
    answer = browser.get(path)
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/admin/sign-in?next=")
    assert "MUG" not in answer.text


def test_a_post_without_a_session_changes_nothing(browser: Browser, stocked: Platform) -> None:
    before = stocked.inventory.stock("MUG").on_hand
    token = browser.token()  # a token of a session that never signed in
    answer = browser.post("/admin/inventory/MUG/adjustments",
                          {"csrf": token, "warehouse": "BER", "delta": "5", "reason": "x"})
    assert answer.status_code == 303 and "/admin/sign-in" in answer.headers["location"]
    assert stocked.inventory.stock("MUG").on_hand == before


def test_a_customer_key_and_a_wrong_key_cannot_sign_in(browser: Browser) -> None:
    refused = browser.sign_in(ALICE)
    assert refused.status_code == 403 and "customers have no console" in refused.text
    wrong = browser.sign_in("not-a-key-at-all-not-a-key")
    assert wrong.status_code == 401 and "not valid" in wrong.text
    assert browser.get("/admin/orders").status_code == 303  # still outside


def test_failed_sign_ins_are_limited_per_address(stocked: Platform) -> None:
    browser = Browser(_app(stocked, sign_in_failure_limit="3/minute"))
    try:
        assert [browser.sign_in("wrong-key-wrong-key-wrong").status_code
                for _ in range(3)] == [401] * 3
        blocked = browser.sign_in()  # even the right key waits now
        assert blocked.status_code == 429 and "Too many failed sign-ins" in blocked.text
    finally:
        browser.close()


def test_signing_in_gives_a_fresh_strict_http_only_cookie_and_signing_out_ends_it(
    browser: Browser,
) -> None:
    before = browser.token()
    answer = browser.sign_in()
    assert answer.status_code == 303 and answer.headers["location"] == "/admin/orders"
    cookie = answer.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/admin" in cookie
    assert "Secure" not in cookie  # plain HTTP here; over HTTPS it is (below)
    assert browser.token("/admin/orders") != before  # a new session: no fixation
    assert browser.get("/admin/orders").status_code == 200
    out = browser.post("/admin/sign-out", {"csrf": browser.token("/admin/orders")})
    assert out.status_code == 303
    assert browser.get("/admin/orders").status_code == 303


def test_over_https_the_cookie_is_secure(stocked: Platform) -> None:
    browser = Browser(_app(stocked), base="https://shop.test")
    try:
        assert "Secure" in browser.sign_in().headers["set-cookie"]
    finally:
        browser.close()


def test_a_forged_or_idle_session_is_signed_out(stocked: Platform) -> None:
    browser = Browser(_app(stocked, session_idle=1))
    try:
        browser.sign_in()
        assert browser.get("/admin/").status_code == 200
        value = browser.client.cookies["commerce_admin"]
        browser.client.cookies.set("commerce_admin", value[:-2] + "xx", path="/admin")
        assert browser.get("/admin/").status_code == 303  # tampered: not a session
        browser.client.cookies.set("commerce_admin", value, path="/admin")
        time.sleep(2.1)
        assert browser.get("/admin/").status_code == 303  # idle past its time
    finally:
        browser.close()


def test_another_config_s_cookie_is_no_session(stocked: Platform, admin: Browser) -> None:
    value = admin.client.cookies["commerce_admin"]
    other = Browser(Starlette(routes=[Mount("/admin", app=create_admin(
        stocked, AdminConfig(session_secret="t" * 40, api_keys=KEYS)))]))
    try:
        other.client.cookies.set("commerce_admin", value, path="/admin")
        assert other.get("/admin/").status_code == 303
    finally:
        other.close()


def test_every_page_carries_the_security_headers(admin: Browser) -> None:
    for path in PAGES:
        answer = admin.get(path)
        assert answer.status_code == 200, path
        csp = answer.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
        assert "script-src" not in csp  # no script is allowed at all
        assert answer.headers["x-frame-options"] == "DENY"
        assert answer.headers["cache-control"] == "no-store"
        assert "<script" not in answer.text


def test_a_form_without_its_token_is_refused_and_nothing_changes(
    admin: Browser, stocked: Platform,
) -> None:
    before = stocked.inventory.stock("MUG").on_hand
    form = {"warehouse": "BER", "delta": "5", "reason": "count"}
    for sent in ({}, {"csrf": "forged"}, {"csrf": ""}):
        answer = admin.post("/admin/inventory/MUG/adjustments", {**form, **sent})
        assert answer.status_code == 403 and "nothing was changed" in answer.text
    assert stocked.inventory.stock("MUG").on_hand == before
    ok = admin.post("/admin/inventory/MUG/adjustments",
                    {**form, "csrf": admin.token("/admin/inventory/MUG")})
    assert ok.status_code == 303
    assert stocked.inventory.stock("MUG").on_hand == before + 5


def test_only_forms_are_read(admin: Browser) -> None:
    token = admin.token("/admin/")
    answer = admin.loop.run_until_complete(admin.client.post(
        "/admin/warehouses", json={"csrf": token, "code": "X", "name": "Y"}))
    assert answer.status_code == 415
    big = admin.post("/admin/warehouses", {"csrf": token, "code": "X", "name": "y" * 70_000})
    assert big.status_code == 413


def test_sign_in_goes_back_only_to_the_console(browser: Browser) -> None:
    for target in ("https://evil.example/", "//evil.example/admin/", "/v1/orders",
                   "/admin/\\evil"):
        answer = browser.post("/admin/sign-in", {"csrf": browser.token(), "key": ADMIN,
                                                 "next": target})
        assert answer.headers["location"] == "/admin/", target
        browser.post("/admin/sign-out", {"csrf": browser.token("/admin/")})


def test_a_product_name_with_markup_shows_as_text(admin: Browser, stocked: Platform) -> None:
    stocked.inventory.upsert_product("SKU-X", name="<script>alert(1)</script>",
                                     price=Money(100, "EUR"))
    for path in ("/admin/products", "/admin/inventory/SKU-X"):
        text = admin.get(path).text
        assert "<script>alert(1)</script>" not in text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text


def _place(platform: Platform, *lines: tuple[str, int], customer: str = "alice") -> str:
    placed = platform.checkout.place_order(order(*lines, customer=customer),
                                           idempotency_key=f"k-{time.monotonic_ns()}")
    return placed.id


def _confirmed(admin: Browser, path: str, form: dict[str, str]) -> httpx.Response:
    """Post an action, check its confirmation page, and confirm it."""
    order_path = path.rsplit("/", 1)[0].split("/returns/", maxsplit=1)[0]
    token = admin.token(order_path)
    asked = admin.post(path, {"csrf": token, **form})
    assert asked.status_code == 200 and "Confirm" in asked.text, asked.text
    return admin.post(path, _hidden(asked.text))


def _hidden(text: str) -> list[tuple[str, str]]:
    """The hidden fields of a page's form, as a browser would send them back."""
    return [(html.unescape(name), html.unescape(value)) for name, value in re.findall(
        r'<input type="hidden" name="([^"]+)" value="([^"]*)">', text)]


def test_an_order_ships_in_parts_after_a_confirmation(admin: Browser,
                                                      stocked: Platform) -> None:
    order_id = _place(stocked, ("MUG", 3), ("POT", 1))
    page = admin.get(f"/admin/orders/{order_id}")
    assert page.status_code == 200 and "Ship a parcel" in page.text
    form = {"qty_MUG": "2", "qty_POT": "0", "carrier": "DHL", "tracking_number": "JD1"}
    asked = admin.post(f"/admin/orders/{order_id}/ship",
                       {"csrf": admin.token(f"/admin/orders/{order_id}"), **form})
    assert "Ship 2 × MUG by DHL (tracking JD1)" in asked.text  # noqa: RUF001
    assert stocked.orders.get(order_id).status is OrderStatus.CONFIRMED  # not yet
    done = _confirmed(admin, f"/admin/orders/{order_id}/ship", form)
    assert done.status_code == 303 and done.headers["location"].endswith("?done=shipped")
    shipped = stocked.orders.get(order_id)
    assert shipped.status is OrderStatus.PARTIALLY_SHIPPED
    assert [(s.carrier, s.lines) for s in shipped.shipments] == [
        ("DHL", (ShipmentLine("MUG", 2),))]
    assert "The parcel is on its way." in admin.get(done.headers["location"]).text


def test_a_refused_action_shows_the_services_message_and_changes_nothing(
    admin: Browser, stocked: Platform,
) -> None:
    order_id = _place(stocked, ("MUG", 1))
    answer = _confirmed(admin, f"/admin/orders/{order_id}/ship",
                        {"qty_MUG": "1", "carrier": "DHL", "tracking_number": "J",
                         "warehouse": "NOWHERE"})
    assert answer.status_code in (404, 409, 422)
    assert "Nothing was changed." in answer.text
    assert stocked.orders.get(order_id).status is OrderStatus.CONFIRMED
    missing = admin.post(f"/admin/orders/{order_id}/ship",
                         {"csrf": admin.token(f"/admin/orders/{order_id}"),
                          "qty_MUG": "abc", "carrier": "DHL", "tracking_number": "J"})
    assert missing.status_code == 422 and "whole number" in missing.text


def test_a_refund_confirmed_twice_is_made_once(admin: Browser, stocked: Platform) -> None:
    order_id = _place(stocked, ("MUG", 2))
    stocked.checkout.ship(order_id, carrier="DHL", tracking_number="J")
    path = f"/admin/orders/{order_id}/refund"
    asked = admin.post(path, {"csrf": admin.token(f"/admin/orders/{order_id}"),
                              "amount": "5.00", "reason": "scratched"})
    hidden = _hidden(asked.text)
    assert admin.post(path, hidden).status_code == 303
    again = admin.post(path, hidden)  # the same confirmation again: the order has changed
    assert again.status_code == 409 and "look at it again" in again.text
    payment = stocked.orders.payment(stocked.orders.get(order_id))
    assert payment is not None and payment.refunded == Money(500, "EUR")
    too_much = _confirmed(admin, path, {"amount": "99999.00", "reason": "no"})
    assert too_much.status_code == 409 and "Nothing was changed." in too_much.text
    payment = stocked.orders.payment(stocked.orders.get(order_id))
    assert payment is not None and payment.refunded == Money(500, "EUR")


def test_a_return_is_received_then_refunded(admin: Browser, stocked: Platform) -> None:
    order_id = _place(stocked, ("MUG", 2))
    stocked.checkout.ship(order_id, carrier="DHL", tracking_number="J")
    asked = stocked.checkout.request_return(order_id, lines=[ReturnLine("MUG", 1)],
                                            reason="too big", customer_id="alice")
    on_hand = stocked.inventory.stock("MUG").on_hand
    base = f"/admin/orders/{order_id}/returns/{asked.id}"
    assert _confirmed(admin, f"{base}/receive",
                      {"warehouse": "BER", "restock": "yes"}).status_code == 303
    assert stocked.orders.get_return(asked.id).status.value == "received"
    assert stocked.inventory.stock("MUG").on_hand == on_hand + 1
    assert _confirmed(admin, f"{base}/refund", {}).status_code == 303
    assert stocked.orders.get_return(asked.id).status.value == "refunded"
    another = _confirmed(admin, f"{base}/reject", {"reason": "late"})
    assert another.status_code == 409 and "Nothing was changed." in another.text


def test_metadata_is_set_and_removed(admin: Browser, stocked: Platform) -> None:
    order_id = _place(stocked, ("MUG", 1))
    path = f"/admin/orders/{order_id}/metadata"
    assert _confirmed(admin, path, {"key": "gift_note", "value": "<b>hi</b>"}).status_code == 303
    assert stocked.orders.get(order_id).metadata == {"gift_note": "<b>hi</b>"}
    assert "&lt;b&gt;hi&lt;/b&gt;" in admin.get(f"/admin/orders/{order_id}").text
    bad = _confirmed(admin, path, {"key": "Not A Key", "value": "x"})
    assert bad.status_code == 422
    assert _confirmed(admin, path, {"key": "gift_note", "value": ""}).status_code == 303
    assert stocked.orders.get(order_id).metadata == {}


def test_the_orders_list_filters_searches_and_pages(admin: Browser, stocked: Platform) -> None:
    ids = [_place(stocked, ("MUG", 1), customer=c) for c in ("alice", "bob", "alice")]
    listed = admin.get("/admin/orders", customer="alice").text
    assert ids[0] in listed and ids[2] in listed and ids[1] not in listed
    assert admin.get("/admin/orders", status="shipped").text.count("/admin/orders/ord_") == 0
    found = admin.get("/admin/orders", q=ids[1])
    assert found.status_code == 303 and found.headers["location"] == f"/admin/orders/{ids[1]}"
    assert admin.get("/admin/orders", q="ord_nope").status_code == 404
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%d")
    yesterday = (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%d")
    assert ids[0] not in admin.get("/admin/orders", **{"from": tomorrow}).text
    assert ids[0] not in admin.get("/admin/orders", to=yesterday).text
    assert ids[0] in admin.get("/admin/orders", **{"from": yesterday, "to": tomorrow}).text
    assert admin.get("/admin/orders", to="2026-13-45").status_code == 422
    assert admin.get("/admin/orders", status="nonsense").status_code == 422
    assert admin.get("/admin/orders", cursor="!!!").status_code == 422


def test_the_orders_list_pages_with_a_cursor(admin: Browser, stocked: Platform) -> None:
    stocked.inventory.adjust_stock("MUG", "BER", delta=100, reason="more")
    ids = [_place(stocked, ("MUG", 1)) for _ in range(27)]
    first = admin.get("/admin/orders").text
    assert ids[-1] in first and ids[1] not in first
    cursor = re.search(r'rel="next" href="[^"]*cursor=([^"&]+)', first)
    assert cursor
    second = admin.get("/admin/orders", cursor=cursor.group(1)).text
    assert ids[0] in second and ids[-1] not in second


def test_the_dashboard_counts_today_s_orders(admin: Browser, stocked: Platform) -> None:
    _place(stocked, ("MUG", 1))
    _place(stocked, ("MUG", 1), customer="bob")
    with pytest.raises(PaymentDeclined):
        stocked.checkout.place_order(order(("MUG", 1), token="tok_declined"),
                                     idempotency_key="declined")
    text = admin.get("/admin/").text
    today = text.split('id="h-today"')[1].split("</section>")[0]
    assert re.search(r'data-figure="placed">2<', today)
    unit = stocked.inventory.get_product("MUG").price.amount
    assert str(Money(2 * unit, "EUR")) in today
    assert re.search(r"<td>failed</td><td>payment-declined</td><td>1</td>", today)


def test_products_are_created_edited_and_their_stock_adjusted(admin: Browser,
                                                              stocked: Platform) -> None:
    token = admin.token("/admin/products/new")
    made = admin.post("/admin/products", {"csrf": token, "sku": "SKU-NEW", "name": "Kettle",
                                          "price": "24.90", "currency": "EUR", "active": "yes"})
    assert made.status_code == 303
    assert stocked.inventory.get_product("SKU-NEW").price == Money(2490, "EUR")
    again = admin.post("/admin/products", {"csrf": token, "sku": "SKU-NEW", "name": "K",
                                           "price": "1", "currency": "EUR"})
    assert again.status_code == 422 and "exists" in again.text
    bad = admin.post("/admin/products", {"csrf": token, "sku": "SKU-B", "name": "K",
                                         "price": "1.234", "currency": "EUR"})
    assert bad.status_code == 422
    edited = admin.post("/admin/inventory/SKU-NEW", {"csrf": token, "name": "Kettle 2",
                                                      "price": "19.00"})
    assert edited.status_code == 303
    product = stocked.inventory.get_product("SKU-NEW")
    assert (product.name, product.price, product.active) == ("Kettle 2", Money(1900, "EUR"),
                                                             False)
    too_few = admin.post("/admin/inventory/SKU-NEW/adjustments",
                         {"csrf": token, "warehouse": "BER", "delta": "-1", "reason": "x"})
    assert too_few.status_code == 409 and "Nothing was changed." in too_few.text
    assert stocked.inventory.stock("SKU-NEW").on_hand == 0


def test_a_host_s_own_admins_need_no_key_and_its_customers_no_page(stocked: Platform) -> None:
    def authenticate(request: Request) -> Principal | None:
        who = request.headers.get("x-host-user")
        return {"root": Principal.admin(), "eve": Principal.customer("eve")}.get(who or "")

    browser = Browser(_app(stocked, authenticate=authenticate))
    try:
        browser.client.headers["x-host-user"] = "root"
        page = browser.get("/admin/orders")
        assert page.status_code == 200
        # their session is the host's: no console sign-out that would not sign them out
        assert "/admin/sign-out" not in page.text
        token = browser.token("/admin/warehouses")
        assert browser.post("/admin/warehouses", {"csrf": token, "code": "HAM",
                                                  "name": "Hamburg"}).status_code == 303
        browser.client.headers["x-host-user"] = "eve"
        assert browser.get("/admin/orders").status_code == 403
        del browser.client.headers["x-host-user"]
        assert browser.get("/admin/orders").status_code == 303  # the host names nobody now
    finally:
        browser.close()


def test_a_host_s_admin_signs_out_at_the_host(stocked: Platform) -> None:
    browser = Browser(_app(stocked, authenticate=lambda _: Principal.admin(),
                           sign_out_url="/accounts/logout"))
    try:
        page = browser.get("/admin/")
        assert '<a href="/accounts/logout">Sign out</a>' in page.text
        assert "/admin/sign-out" not in page.text
    finally:
        browser.close()


def test_an_admin_who_loses_a_race_is_told_the_order_changed(
    admin: Browser, stocked: Platform, monkeypatch: pytest.MonkeyPatch,
) -> None:
    order_id = _place(stocked, ("MUG", 1))

    def lost(*_: object, **__: object) -> None:  # another admin wrote the order meanwhile
        raise ConcurrencyConflict("order", order_id)

    monkeypatch.setattr(stocked.checkout, "cancel", lost)
    answer = _confirmed(admin, f"/admin/orders/{order_id}/cancel", {})
    assert answer.status_code == 409 and "look at it again" in answer.text
    assert stocked.orders.get(order_id).status is OrderStatus.CONFIRMED


def test_a_weak_configuration_is_refused(stocked: Platform) -> None:
    with pytest.raises(InvalidInput, match="admin console"):
        create_admin(stocked, AdminConfig(session_secret="short", api_keys=KEYS))


def test_the_reference_server_mounts_the_console(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COMMERCE_ORDERS_URL", f"sqlite:///{tmp_path}/o.db")
    monkeypatch.setenv("COMMERCE_INVENTORY_URL", f"sqlite:///{tmp_path}/i.db")
    monkeypatch.setenv("COMMERCE_API_KEYS", f"{ADMIN}=admin")
    browser = Browser(create_app())
    try:
        answer = browser.get("/admin")
        assert answer.status_code == 308 and answer.headers["location"] == "/admin/"
        assert browser.sign_in().headers["location"] == "/admin/orders"
        assert browser.get("/admin/orders").status_code == 200
        assert browser.get("/v1/products").status_code == 200  # the API is still there
    finally:
        browser.close()


def test_a_shipment_confirmed_twice_ships_one_parcel(admin: Browser, stocked: Platform) -> None:
    order_id = _place(stocked, ("MUG", 3))
    path = f"/admin/orders/{order_id}/ship"
    asked = admin.post(path, {"csrf": admin.token(f"/admin/orders/{order_id}"), "qty_MUG": "1",
                              "carrier": "DHL", "tracking_number": "JD7"})
    hidden = _hidden(asked.text)
    assert admin.post(path, hidden).status_code == 303
    assert admin.post(path, hidden).status_code == 409  # the order changed: nothing done
    shipped = stocked.orders.get(order_id)
    assert len(shipped.shipments) == 1 and shipped.lines[0].shipped_quantity == 1


def test_signing_out_ends_the_session_for_every_copy_of_its_cookie(
    admin: Browser, stocked: Platform,
) -> None:
    copied = admin.client.cookies["commerce_admin"]
    token = admin.token("/admin/")
    assert admin.post("/admin/sign-out", {"csrf": token}).status_code == 303
    admin.client.cookies.set("commerce_admin", copied, path="/admin")  # the copy, replayed
    assert admin.get("/admin/orders").status_code == 303
    before = stocked.inventory.stock("MUG").on_hand
    answer = admin.post("/admin/inventory/MUG/adjustments",
                        {"csrf": token, "warehouse": "BER", "delta": "1", "reason": "x"})
    assert answer.status_code == 303 and "/admin/sign-in" in answer.headers["location"]
    assert stocked.inventory.stock("MUG").on_hand == before


def _console(browser: Browser) -> Any:
    app = browser.client._transport.app  # type: ignore[attr-defined]
    return app.routes[0].app.state.console


def test_a_sign_out_is_recorded_even_while_the_limits_leave_the_storage_alone(
    admin: Browser,
) -> None:
    """A storage blip opened the rate limits' breaker a moment ago; the storage answers
    again: the sign-out is recorded all the same, and the copy of the cookie is refused."""
    limiter = _console(admin).limiter

    def blip() -> None:
        raise StorageError(ConnectionError("redis: timed out"))

    limiter.ask(blip, None)
    assert limiter.skipping
    copied = admin.client.cookies["commerce_admin"]
    assert admin.post("/admin/sign-out", {"csrf": admin.token("/admin/")}).status_code == 303
    admin.client.cookies.set("commerce_admin", copied, path="/admin")
    assert admin.get("/admin/orders").status_code == 303  # to sign-in


def test_a_sign_out_that_cannot_be_recorded_keeps_the_session_and_says_so(
    admin: Browser, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    storage = _console(admin).limiter.storage
    token = admin.token("/admin/")

    def down(*args: object, **kwargs: object) -> int:
        raise StorageError(ConnectionError("redis: connection refused"))

    monkeypatch.setattr(storage, "incr", down)
    answer = admin.post("/admin/sign-out", {"csrf": token})
    assert answer.status_code == 503
    assert "still signed in" in answer.text
    assert "cannot record a sign-out" in caplog.text
    monkeypatch.undo()
    assert admin.get("/admin/orders").status_code == 200  # still signed in, as it said
    assert admin.post("/admin/sign-out", {"csrf": token}).status_code == 303  # again: done
    assert admin.get("/admin/orders").status_code == 303


@pytest.mark.parametrize("amount", ["1e30", "1e999999", "1_0", "١٢", "12.345", "-1", "0",
                                    "0.00", " ", "NaN", "Infinity", "1" * 14])
def test_amounts_are_plain_decimals_or_refused(admin: Browser, stocked: Platform,
                                               amount: str) -> None:
    order_id = _place(stocked, ("MUG", 1))
    stocked.checkout.ship(order_id, carrier="DHL", tracking_number="J")
    token = admin.token(f"/admin/orders/{order_id}")
    refund = admin.post(f"/admin/orders/{order_id}/refund",
                        {"csrf": token, "amount": amount, "reason": "x"})
    price = admin.post("/admin/inventory/MUG", {"csrf": token, "name": "Mug", "price": amount})
    made = admin.post("/admin/products", {"csrf": token, "sku": "NEW-1", "name": "N",
                                          "price": amount, "currency": "EUR"})
    if amount == " ":  # blank: "everything still captured" for a refund; required for a price
        assert refund.status_code == 200 and price.status_code == made.status_code == 422
    else:
        assert [refund.status_code, price.status_code, made.status_code] == [422] * 3
    assert stocked.inventory.get_product("MUG").price == Money(1250, "EUR")
    payment = stocked.orders.payment(stocked.orders.get(order_id))
    assert payment is not None and payment.refunded == Money(0, "EUR")


def test_hostile_addresses_and_forms_get_a_clear_page_and_change_nothing(
    admin: Browser, stocked: Platform,
) -> None:
    for path, params in (("/admin/orders", {"to": "9999-12-31"}),
                         ("/admin/orders", {"from": "0001-01-01"}),
                         ("/admin/orders", {"customer": "\x00"}),
                         ("/admin/products", {"sku": "MUG\x00"}),
                         ("/admin/inventory/%00", {}),
                         ("/admin/orders/%00", {})):
        answer = admin.get(path, **params)
        assert answer.status_code in (400, 404, 422), (path, params, answer.status_code)
    token = admin.token("/admin/")
    for form in ({"code": "W\x00", "name": "x"}, {"code": "W1", "name": "a\x01b"}):
        assert admin.post("/admin/warehouses", {"csrf": token, **form}).status_code == 400
    broken = admin.loop.run_until_complete(admin.client.post(
        "/admin/warehouses", content=f"csrf={token}&code=W2&name=Bad%FF%FEname",
        headers={"content-type": "application/x-www-form-urlencoded"}))
    assert broken.status_code == 400
    raw = admin.loop.run_until_complete(admin.client.post(
        "/admin/warehouses", content=f"csrf={token}&code=W3&name=Caf\xe9".encode("latin-1"),
        headers={"content-type": "application/x-www-form-urlencoded"}))
    assert raw.status_code == 400
    assert [w.code for w in stocked.inventory.list_warehouses()] == ["AMS", "BER"]
    order_id = _place(stocked, ("MUG", 2))
    unicode_digit = admin.post(f"/admin/orders/{order_id}/ship", {
        "csrf": token, "qty_MUG": "١", "carrier": "DHL",  # noqa: RUF001
        "tracking_number": "J"})
    assert unicode_digit.status_code == 422


def test_sign_in_never_goes_back_outside_the_console(browser: Browser) -> None:
    for target in ("/admin/../../evil", "/admin/./../v1/orders", "/admin/%2e%2e/evil"):
        answer = browser.post("/admin/sign-in", {"csrf": browser.token(), "key": ADMIN,
                                                 "next": target})
        assert answer.headers["location"] == "/admin/", target
        browser.post("/admin/sign-out", {"csrf": browser.token("/admin/")})


def test_a_confirmation_shown_before_another_admin_acted_does_nothing(
    admin: Browser, stocked: Platform,
) -> None:
    order_id = _place(stocked, ("MUG", 2))
    stocked.checkout.ship(order_id, carrier="DHL", tracking_number="J")
    path = f"/admin/orders/{order_id}/refund"
    asked = admin.post(path, {"csrf": admin.token(f"/admin/orders/{order_id}"),
                              "amount": "", "reason": "all of it"})
    assert "Refund everything still captured" in asked.text
    stocked.checkout.refund(order_id, amount=Money(100, "EUR"), reason="another admin")
    late = admin.post(path, _hidden(asked.text))
    assert late.status_code == 409 and "look at it again" in late.text
    payment = stocked.orders.payment(stocked.orders.get(order_id))
    assert payment is not None and payment.refunded == Money(100, "EUR")


def test_a_signed_in_form_that_trickles_in_gets_408(admin: Browser, stocked: Platform) -> None:
    token = admin.token("/admin/warehouses")
    cookie = admin.client.cookies["commerce_admin"]
    app = _app(stocked, body_timeout=0.2)
    # the same secret and keys: the session of `admin` is good on this app too
    sent: list[dict[str, Any]] = []

    async def call() -> None:
        chunks = [f"csrf={token}&code=SLOW".encode()]

        async def receive() -> dict[str, Any]:
            if chunks:
                return {"type": "http.request", "body": chunks.pop(), "more_body": True}
            await asyncio.sleep(30)
            return {"type": "http.disconnect"}

        async def send(message: MutableMapping[str, Any]) -> None:
            sent.append(dict(message))

        scope = {"type": "http", "method": "POST", "path": "/admin/warehouses",
                 "raw_path": b"/admin/warehouses", "root_path": "", "query_string": b"",
                 "headers": [(b"content-type", b"application/x-www-form-urlencoded"),
                             (b"host", b"shop.test"),
                             (b"cookie", f"commerce_admin={cookie}".encode())],
                 "scheme": "http", "server": ("shop.test", 80), "client": ("10.0.0.1", 1),
                 "http_version": "1.1", "asgi": {"version": "3.0"}}
        await asyncio.wait_for(app(scope, receive, send), timeout=5)

    asyncio.run(call())
    assert sent[0]["status"] == 408
    assert [w.code for w in stocked.inventory.list_warehouses()] == ["AMS", "BER"]

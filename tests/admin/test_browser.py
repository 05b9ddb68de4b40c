"""The console in a real browser: Debian's Chromium, headless, driven by Selenium, against the
real ``commerce-server``. An admin signs in, finds an order a customer placed over the API,
ships part of it, refunds, receives a return and adjusts stock, each result checked through
the API; a form without its token, a product named like a script and a customer's key are
refused; and the main path works with the keyboard alone. The screenshots go to the docs.

``.ci/run`` installs ``chromium`` and ``chromium-driver`` when they are missing; in CI a
missing browser fails these tests, elsewhere it skips them."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException, StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import Select, WebDriverWait

from tests.e2e.conftest import ADMIN_KEY, ALICE_KEY, Server, sqlite_env

SHOTS = Path(__file__).resolve().parents[2] / "docs" / "img"
ADDRESS = {"name": "Alice", "line1": "Main St 1", "city": "Berlin", "postal_code": "10115",
           "country": "DE"}


def _browser_paths() -> tuple[str, str]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if chromium is None or driver is None:
        message = ("Chromium and its driver are not installed: "
                   "apt-get install chromium chromium-driver")
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return chromium, driver


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("console")
    running = Server(folder, sqlite_env(folder), "--demo")
    yield running
    running.stop()


@pytest.fixture(scope="module")
def driver() -> Iterator[webdriver.Chrome]:
    chromium, chromedriver = _browser_paths()
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--window-size=1280,1000", "--disable-gpu"):
        options.add_argument(argument)
    browser = webdriver.Chrome(options=options, service=Service(chromedriver))
    browser.implicitly_wait(2)
    yield browser
    browser.quit()


@pytest.fixture(scope="module")
def api(shop: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=shop.url, timeout=10) as client:
        yield client


def _as(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _place(api: httpx.Client, *lines: tuple[str, int], key: str = "") -> dict[str, Any]:
    answer = api.post("/v1/orders", headers={**_as(ALICE_KEY), "Idempotency-Key": key or
                                             os.urandom(8).hex()}, json={
        "lines": [{"sku": sku, "quantity": q} for sku, q in lines],
        "payment": {"token": "tok_visa"}, "shipping_address": ADDRESS})
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def _shot(browser: webdriver.Chrome, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(SHOTS / f"admin-{name}.png"))


def _tab_to(browser: webdriver.Chrome, target: WebElement, *, most: int = 150) -> None:
    """Press Tab until ``target`` has the focus (the keyboard alone reaches it)."""
    for _ in range(most):
        try:
            if browser.switch_to.active_element == target:
                return
            browser.switch_to.active_element.send_keys(Keys.TAB)
        except StaleElementReferenceException:  # the page was still being replaced
            continue
    raise AssertionError(f"Tab never reached {target.get_attribute('outerHTML')}")


def _heading(browser: webdriver.Chrome, starts: str) -> None:
    """Wait for the page whose heading starts with ``starts`` (a form sent with Enter
    returns before the next page is there)."""
    WebDriverWait(browser, 10, ignored_exceptions=(StaleElementReferenceException,)).until(
        lambda b: b.find_element(By.TAG_NAME, "h1").text.startswith(starts))


def _confirm(browser: webdriver.Chrome) -> None:
    _heading(browser, "Confirm")
    browser.find_element(By.XPATH, "//button[text()='Confirm']").click()


def _sign_in(browser: webdriver.Chrome, shop: Server, key: str) -> None:
    browser.get(f"{shop.url}/admin/")
    assert "/admin/sign-in" in browser.current_url
    field = browser.find_element(By.ID, "key")
    _tab_to(browser, field)
    field.send_keys(key, Keys.ENTER)
    WebDriverWait(browser, 10, ignored_exceptions=(StaleElementReferenceException,)).until(
        lambda b: "/admin/sign-in" not in b.current_url
        or b.find_elements(By.CSS_SELECTOR, ".error"))


def test_a_customer_key_cannot_sign_in(driver: webdriver.Chrome, shop: Server) -> None:
    driver.delete_all_cookies()
    _sign_in(driver, shop, ALICE_KEY)
    assert "customers have no console" in driver.find_element(By.CSS_SELECTOR, ".error").text
    driver.get(f"{shop.url}/admin/orders")
    assert "/admin/sign-in" in driver.current_url


def test_an_admin_runs_an_order_with_the_keyboard_alone(
    driver: webdriver.Chrome, shop: Server, api: httpx.Client,
) -> None:
    placed = _place(api, ("MUG-01", 2), ("TEA-01", 1))
    driver.delete_all_cookies()
    _sign_in(driver, shop, ADMIN_KEY)  # Tab to the key, type it, Enter
    _heading(driver, "Dashboard")
    _shot(driver, "dashboard")
    # to the orders with the keyboard, and the order by its id
    _tab_to(driver, driver.find_element(By.LINK_TEXT, "Orders"))
    driver.switch_to.active_element.send_keys(Keys.ENTER)
    _heading(driver, "Orders")
    _shot(driver, "orders")
    search = driver.find_element(By.ID, "q")
    _tab_to(driver, search)
    search.send_keys(placed["id"], Keys.ENTER)
    _heading(driver, "Order ")
    assert driver.current_url.endswith(f"/admin/orders/{placed['id']}")
    _shot(driver, "order")
    # ship one of the two mugs, nothing else: the keyboard fills the form and sends it
    mugs = driver.find_element(By.NAME, "qty_MUG-01")
    _tab_to(driver, mugs)
    mugs.send_keys(Keys.CONTROL, "a")
    mugs.send_keys("1")
    tea = driver.find_element(By.NAME, "qty_TEA-01")
    _tab_to(driver, tea)
    tea.send_keys(Keys.CONTROL, "a")
    tea.send_keys("0")
    carrier = driver.find_element(By.ID, "carrier")
    _tab_to(driver, carrier)
    carrier.send_keys("DHL")
    tracking = driver.find_element(By.ID, "tracking_number")
    _tab_to(driver, tracking)
    tracking.send_keys("JD0001", Keys.ENTER)
    _heading(driver, "Confirm")
    assert "Ship 1 × MUG-01 by DHL" in driver.find_element(  # noqa: RUF001
        By.CSS_SELECTOR, "[data-field=summary]").text
    _shot(driver, "confirm")
    driver.switch_to.active_element.send_keys(Keys.ENTER)  # "Confirm" has the focus
    _heading(driver, "Order ")
    assert "The parcel is on its way." in driver.find_element(By.CSS_SELECTOR, ".done").text
    found = api.get(f"/v1/orders/{placed['id']}", headers=_as(ADMIN_KEY)).json()
    assert found["status"] == "partially_shipped"
    assert [(s["carrier"], s["lines"]) for s in found["shipments"]] == [
        ("DHL", [{"sku": "MUG-01", "quantity": 1}])]


def test_an_admin_refunds_receives_a_return_and_adjusts_stock(
    driver: webdriver.Chrome, shop: Server, api: httpx.Client,
) -> None:
    placed = _place(api, ("MUG-01", 2))
    shipped = api.post(f"/v1/orders/{placed['id']}/ship", headers=_as(ADMIN_KEY),
                       json={"carrier": "UPS", "tracking_number": "1Z"})
    assert shipped.status_code == 200, shipped.text
    driver.delete_all_cookies()
    _sign_in(driver, shop, ADMIN_KEY)
    driver.get(f"{shop.url}/admin/orders/{placed['id']}")
    # a part refund
    driver.find_element(By.ID, "amount").send_keys("2.50")
    driver.find_element(By.ID, "reason").send_keys("scratched")
    driver.find_element(By.XPATH, "//button[text()='Refund…']").click()
    _confirm(driver)
    assert "The refund is made." in driver.find_element(By.CSS_SELECTOR, ".done").text
    payment = api.get(f"/v1/orders/{placed['id']}", headers=_as(ADMIN_KEY)).json()["payment"]
    assert payment["refunded"] == {"amount": 250, "currency": "EUR"}
    # the customer sends a mug back; the admin receives it into Amsterdam's stock
    asked = api.post(f"/v1/orders/{placed['id']}/returns", headers=_as(ALICE_KEY),
                     json={"lines": [{"sku": "MUG-01", "quantity": 1}], "reason": "chipped"})
    assert asked.status_code == 201, asked.text
    before = api.get("/v1/inventory/MUG-01", headers=_as(ADMIN_KEY)).json()
    driver.get(f"{shop.url}/admin/orders/{placed['id']}")
    Select(driver.find_element(By.ID, "rw_1")).select_by_value("AMS")
    driver.find_element(By.XPATH, "//button[text()='Receive…']").click()
    _confirm(driver)
    assert "The return is received." in driver.find_element(By.CSS_SELECTOR, ".done").text
    returned = api.get(f"/v1/returns/{asked.json()['id']}", headers=_as(ADMIN_KEY)).json()
    assert (returned["status"], returned["warehouse"], returned["restock"]) == (
        "received", "AMS", True)
    after = api.get("/v1/inventory/MUG-01", headers=_as(ADMIN_KEY)).json()
    assert after["on_hand"] == before["on_hand"] + 1
    # stock adjusted on the product's page
    driver.get(f"{shop.url}/admin/inventory/MUG-01")
    Select(driver.find_element(By.ID, "adj_warehouse")).select_by_value("BER")
    driver.find_element(By.ID, "delta").send_keys("7")
    driver.find_element(By.ID, "adj_reason").send_keys("stock count")
    driver.find_element(By.XPATH, "//button[text()='Adjust']").click()
    assert "The stock is adjusted." in driver.find_element(By.CSS_SELECTOR, ".done").text
    _shot(driver, "inventory")
    final = api.get("/v1/inventory/MUG-01", headers=_as(ADMIN_KEY)).json()
    assert final["on_hand"] == after["on_hand"] + 7


def test_a_form_without_its_token_is_refused(driver: webdriver.Chrome, shop: Server,
                                              api: httpx.Client) -> None:
    driver.delete_all_cookies()
    _sign_in(driver, shop, ADMIN_KEY)
    driver.get(f"{shop.url}/admin/warehouses")
    driver.find_element(By.ID, "code").send_keys("CSRF")
    driver.find_element(By.ID, "wname").send_keys("Forged")
    # what a forged form from elsewhere lacks: the session's token
    driver.execute_script(
        "document.querySelector('main form input[name=csrf]').remove()")
    driver.find_element(By.XPATH, "//main//button[text()='Save']").click()
    assert "did not come from the console" in driver.find_element(By.CSS_SELECTOR,
                                                                  ".error").text
    # the API knows no such warehouse: stock cannot go there
    into = api.post("/v1/inventory/MUG-01/adjustments",
                    headers={**_as(ADMIN_KEY), "Idempotency-Key": "probe-csrf"},
                    json={"warehouse": "CSRF", "delta": 1, "reason": "probe"})
    assert into.status_code == 422 and "unknown warehouse" in into.text
    driver.get(f"{shop.url}/admin/warehouses")
    assert "Forged" not in driver.find_element(By.TAG_NAME, "main").text


def test_a_product_named_like_a_script_shows_as_text(driver: webdriver.Chrome, shop: Server,
                                                      api: httpx.Client) -> None:
    name = "<script>alert(1)</script>"
    made = api.put("/v1/products/XSS-01", headers=_as(ADMIN_KEY),
                   json={"name": name, "price": {"amount": 100, "currency": "EUR"}})
    assert made.status_code == 201, made.text
    driver.delete_all_cookies()
    _sign_in(driver, shop, ADMIN_KEY)
    for path in ("/admin/products", "/admin/inventory/XSS-01"):
        driver.get(f"{shop.url}{path}")
        with pytest.raises(NoAlertPresentException):
            driver.switch_to.alert.accept()  # no script ran
        assert name in driver.find_element(By.TAG_NAME, "main").text  # shown as text

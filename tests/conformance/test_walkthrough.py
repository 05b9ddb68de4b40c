"""The walk-through (docs/walkthrough.md) as CI runs it: the finished FakePay gateway
(examples/walkthrough/fakepay-gateway) is built and installed as a package, its own test
file passes the whole payment gateway suite against the fake provider
(examples/walkthrough/fakepay_server.py), and ``Platform.from_urls(payments="fakepay://…")``
checks out with it. The package still is what the scaffold writes, filled in."""

from __future__ import annotations

import importlib.util
import inspect
import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import tomllib
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from commerce_core.errors import InvalidInput, PaymentDeclined, PaymentUnavailable
from commerce_core.money import Money
from commerce_core.payments.ports import (
    ALREADY_CAPTURED,
    AUTHORIZATION_EXPIRED,
    GatewayAuthorization,
    PaymentGateway,
)
from commerce_core.testing.conformance import PaymentGatewayConformance
from commerce_core.testing.scaffold import Names, render

WALKTHROUGH = Path(__file__).resolve().parents[2] / "examples" / "walkthrough"
PACKAGE = WALKTHROUGH / "fakepay-gateway"
NAMES = Names("payment-gateway", "fakepay-gateway", "fakepay")


def _fakepay_server() -> ModuleType:
    """examples/walkthrough/fakepay_server.py, imported from its file (examples is no
    package)."""
    module = sys.modules.get("fakepay_server")
    if module is None:
        spec = importlib.util.spec_from_file_location("fakepay_server",
                                                      WALKTHROUGH / "fakepay_server.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["fakepay_server"] = module
        spec.loader.exec_module(module)
    return module


def _gateway_class() -> Any:
    """The gateway class, imported from the package's source file (not installed)."""
    module = sys.modules.get("fakepay_gateway_source")
    if module is None:
        spec = importlib.util.spec_from_file_location(
            "fakepay_gateway_source", PACKAGE / "src" / NAMES.module / "__init__.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["fakepay_gateway_source"] = module
        spec.loader.exec_module(module)
    return getattr(module, NAMES.cls)


@pytest.fixture
def fakepay() -> Iterator[str]:
    """A FakePay of this test's own, on a free port: its ``http://`` base URL."""
    with _fakepay_server().running() as base_url:
        yield str(base_url)


def _fakepay_url(base_url: str) -> str:
    return base_url.replace("http://", "fakepay://", 1)


def _dashboard(base_url: str) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"{base_url}/_control/holds", timeout=5) as response:  # noqa: S310
        holds: list[dict[str, Any]] = json.loads(response.read())["holds"]
    return holds


def _control(base_url: str, **body: Any) -> None:
    request = urllib.request.Request(  # noqa: S310 - the test's own server
        f"{base_url}/_control", data=json.dumps(body).encode(), method="POST",
        headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5):  # noqa: S310
        pass


def _run(args: list[str], cwd: Path, site: Path | None = None,
         **env: str) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", **env}
    environ.pop("PYTEST_ADDOPTS", None)
    if site is not None:
        environ["PYTHONPATH"] = str(site)
    return subprocess.run([sys.executable, *args], cwd=cwd, env=environ, capture_output=True,
                          text=True, timeout=240, check=False)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The package built (hatchling, no download) and installed into a folder of its own, as
    ``pip install`` on an author's machine: (a copy of its source folder, the site folder).
    The copy's ``src`` is moved away, so that nothing is imported from the source."""
    folder = tmp_path_factory.mktemp("walkthrough")
    source = folder / "fakepay-gateway"
    shutil.copytree(PACKAGE, source, ignore=shutil.ignore_patterns("__pycache__"))
    site = folder / "site"
    built = _run(["-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                  "--no-index", "--target", str(site), str(source)], folder)
    assert built.returncode == 0, built.stderr
    assert list(site.glob("fakepay_gateway-0.1.0.dist-info/entry_points.txt"))
    (source / "src").rename(source / "not-imported")
    return source, site


def test_the_finished_gateway_passes_the_whole_suite_against_fakepay(
        installed: tuple[Path, Path], fakepay: str) -> None:
    source, site = installed
    ran = _run(["-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly"],
               source, site, FAKEPAY_URL=_fakepay_url(fakepay))
    output = ran.stdout[-3000:] + ran.stderr[-3000:]
    assert ran.returncode == 0, output
    suite = [name for name in dir(PaymentGatewayConformance) if name.startswith("test_")]
    last = ran.stdout.strip().splitlines()[-1]
    assert f"{len(suite)} passed" in last, output
    assert "failed" not in last and "error" not in last and "skipped" not in last, output
    assert "still to write" not in ran.stdout, output
    assert _dashboard(fakepay), "the suite never reached FakePay"


CHECKOUT = textwrap.dedent('''
    import json, sys
    from commerce_core import Address, Money, OrderItem, PlaceOrder, Platform, RetryPolicy
    from commerce_core.errors import PaymentDeclined

    payments, folder = sys.argv[1], sys.argv[2]
    address = Address("Ada Lovelace", "Main St 1", "Berlin", "10115", "DE")

    def order(token, customer):
        return PlaceOrder(customer_id=customer, lines=[OrderItem("MUG", 2)],
                          payment_token=token, shipping_address=address)

    seen = {}
    with Platform.from_urls(orders=f"sqlite:///{folder}/orders.db",
                            inventory=f"sqlite:///{folder}/inventory.db",
                            payments=payments, retry=RetryPolicy.immediate()) as shop:
        seen["gateway"] = type(shop.payment_gateway).__module__
        shop.inventory.upsert_warehouse("BER", name="Berlin")
        shop.inventory.upsert_product("MUG", name="Mug", price=Money(1250, "EUR"))
        shop.inventory.adjust_stock("MUG", "BER", delta=10, reason="initial stock")

        placed = shop.checkout.place_order(order("tok_ok", "alice"), idempotency_key="alice-1")
        seen["placed"] = [placed.id, str(placed.status), placed.total.amount]
        seen["confirmed_payment"] = str(shop.orders.payment(placed).status)
        shipped = shop.checkout.ship(placed.id, carrier="DHL", tracking_number="JD014600003")
        seen["shipped"] = str(shipped.status)
        seen["shipped_payment"] = str(shop.orders.payment(shipped).status)

        try:
            shop.checkout.place_order(order("tok_no", "bob"), idempotency_key="bob-1")
        except PaymentDeclined as declined:
            failed = shop.orders.get(declined.order_id)
            seen["declined"] = [str(failed.status), failed.failure_reason,
                                declined.decline_code]
        seen["available"] = shop.inventory.stock("MUG").levels[0].available
    print(json.dumps(seen))
''')


def test_the_platform_checks_out_with_the_installed_gateway(
        installed: tuple[Path, Path], fakepay: str, tmp_path: Path) -> None:
    _, site = installed
    (tmp_path / "checkout.py").write_text(CHECKOUT)
    # FakePay's first answer (alice's authorization) is a 503: retried under the same key
    _control(fakepay, fail_next=1)
    ran = _run(["checkout.py", _fakepay_url(fakepay), str(tmp_path)], tmp_path, site)
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
    seen = json.loads(ran.stdout.strip().splitlines()[-1])
    assert seen["gateway"] == "fakepay_gateway"  # found through the installed entry point
    order_id, status, total = seen["placed"]
    assert (status, total, seen["confirmed_payment"]) == ("confirmed", 2500, "authorized")
    assert (seen["shipped"], seen["shipped_payment"]) == ("shipped", "captured")
    failed_status, reason, code = seen["declined"]
    assert (failed_status, code) == ("failed", "card_declined"), seen["declined"]
    assert reason, "a failed order says why"
    assert seen["available"] == 8  # alice's two shipped; bob's released

    # the provider's side: one hold, alice's, captured in full; nothing held for bob
    (hold,) = _dashboard(fakepay)
    assert (hold["status"], hold["captured"], hold["amount"]) == ("captured", 2500, 2500)
    assert hold["reference"] == order_id, hold  # the order's id, on the provider's side


def test_the_package_is_still_what_the_scaffold_writes() -> None:
    """The walk-through starts from the scaffold: the same pyproject.toml, and the class
    has the port's methods (and the scaffold's others), no more."""
    written = render(NAMES)
    assert (PACKAGE / "pyproject.toml").read_text(encoding="utf-8") == written["pyproject.toml"]
    assert sorted(p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*")
                  if p.is_file() and "__pycache__" not in p.parts) == sorted(written)
    entry = tomllib.loads(written["pyproject.toml"])["project"]["entry-points"]
    assert entry["commerce_core.payment_gateways"] == {
        "fakepay": f"{NAMES.module}:{NAMES.cls}.from_url"}

    gateway = _gateway_class()
    port = {name for name, member in vars(PaymentGateway).items()
            if inspect.isfunction(member) and not name.startswith("_")}
    methods = {name for name, member in vars(gateway).items()
               if inspect.isfunction(member) or isinstance(member, classmethod)}
    assert methods == port | {"__init__", "from_url", "close"}
    unwritten = [name for name in sorted(port)
                 if "NotImplementedError" in inspect.getsource(getattr(gateway, name))]
    assert unwritten == [], "every method is written"


def test_what_the_suite_does_not_reach_unavailable_lapsed_and_timed_out(fakepay: str) -> None:
    """The rules of the walk-through the suite cannot provoke on its own: a 5xx, a refused
    connection and a timeout are `PaymentUnavailable` (retried with the same key: one hold);
    a capture of a lapsed hold is `AUTHORIZATION_EXPIRED`, and its void succeeds."""
    gateway = _gateway_class().from_url(_fakepay_url(fakepay))
    eur = Money(1000, "EUR")

    def authorize(key: str) -> GatewayAuthorization:
        result: GatewayAuthorization = gateway.authorize(token="tok_ok", amount=eur,
                                                         idempotency_key=key, reference="r")
        return result

    _control(fakepay, fail_next=1)
    with pytest.raises(PaymentUnavailable, match="503"):
        authorize("k-1")
    assert gateway.find_authorization(idempotency_key="k-1") is None  # the 503 did nothing
    first = authorize("k-1")
    assert authorize("k-1") == first
    assert gateway.find_authorization(idempotency_key="k-1") == first
    assert first.expires_at is not None and first.expires_at.tzinfo is not None

    _control(fakepay, expire=first.id)
    with pytest.raises(PaymentDeclined) as lapsed:
        gateway.capture(authorization_id=first.id, amount=eur, idempotency_key="k-1:c")
    assert lapsed.value.decline_code == AUTHORIZATION_EXPIRED
    gateway.void(authorization_id=first.id, idempotency_key="k-1:v")  # lapsed: fine
    assert gateway.find_authorization(idempotency_key="k-1") is None

    second = authorize("k-2")
    gateway.capture(authorization_id=second.id, amount=Money(400, "EUR"),
                    idempotency_key="k-2:c")
    with pytest.raises(PaymentDeclined) as captured:
        gateway.void(authorization_id=second.id, idempotency_key="k-2:v")
    assert (captured.value.decline_code, captured.value.captured) == (ALREADY_CAPTURED, 400)
    with pytest.raises(PaymentDeclined):  # captured for another amount: not what was asked
        gateway.capture(authorization_id=second.id, amount=eur, idempotency_key="k-2:c2")
    assert [hold["status"] for hold in _dashboard(fakepay)] == ["expired", "captured"]

    with socket.socket() as closed:  # a port nobody listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    refused = _gateway_class().from_url(f"fakepay://127.0.0.1:{port}")
    with pytest.raises(PaymentUnavailable, match="did not answer"):
        refused.find_authorization(idempotency_key="k-1")
    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        slow = _gateway_class()(f"fakepay://127.0.0.1:{silent.getsockname()[1]}",
                                timeout=0.2)
        with pytest.raises(PaymentUnavailable, match="did not answer"):
            slow.authorize(token="tok_ok", amount=eur, idempotency_key="k-3", reference="r")
    with pytest.raises(InvalidInput):
        _gateway_class().from_url("fakepay://")

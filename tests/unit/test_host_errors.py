"""What a host meets when something is set up wrong: each message says what is wrong and
what to do, raised when the platform or the server starts (issue 15's list)."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import pytest

from commerce_core import InvalidInput, Platform, StoreError
from commerce_core.testing import InMemoryInventoryStore, InMemoryOrderStore
from commerce_core.testing.sandbox import SandboxPaymentGateway
from commerce_core_gateway.security import RateLimiter
from commerce_server import cli
from tests.conftest import SERVER_URLS, SERVERS, order, require_server, seed


def _orders(url: str) -> Platform:
    return Platform.from_urls(orders=url, inventory="memory://", payments="sandbox://")


def test_a_database_nobody_listens_on_is_a_store_error_saying_so() -> None:
    with pytest.raises(StoreError) as caught:
        _orders("postgresql+psycopg://app:secret@127.0.0.1:1/shop")
    message = str(caught.value)
    assert "cannot be reached: is the server running" in message
    assert "secret" not in message and "app:***@127.0.0.1:1/shop" in message
    assert "busy" not in message


@pytest.mark.parametrize("server", ["postgresql", "mariadb"])
def test_a_database_that_does_not_exist_is_a_store_error_saying_to_create_it(
    server: str,
) -> None:
    require_server(server, *SERVERS[server])
    url = SERVER_URLS[server].format(db="commerce_no_such_database")
    with pytest.raises(StoreError, match="does not exist; create it first"):
        _orders(url)


def test_a_sqlite_file_that_cannot_be_made_is_a_store_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(StoreError, match="could not be opened"):
        _orders(f"sqlite:///{blocker}/orders.db")


def test_a_bad_rate_limit_names_its_variable_and_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path,
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COMMERCE_API_KEYS", "a-long-enough-admin-key-for-tests=admin")
    for name in ("COMMERCE_RATE_LIMIT", "COMMERCE_CHECKOUT_RATE_LIMIT",
                 "COMMERCE_AUTH_FAILURE_LIMIT"):
        monkeypatch.setenv(name, "lots")
        assert cli.main(["migrate"]) == 2
        err = capsys.readouterr().err
        assert name in err and "must be a rate such as 100/second" in err
        assert "Traceback" not in err
        monkeypatch.delenv(name)


def test_redis_without_its_package_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    from limits.errors import ConfigurationError  # noqa: PLC0415

    from commerce_core_gateway import security  # noqa: PLC0415

    def missing(*_: Any, **__: Any) -> Any:
        raise ConfigurationError("redis prerequisite not available")

    monkeypatch.setattr(security, "storage_from_string", missing)
    with pytest.raises(InvalidInput) as caught:
        RateLimiter("redis://127.0.0.1:6379")
    assert caught.value.errors[0].path == "rate_limits_url"
    assert "pip install 'commerce-core-gateway[redis]'" in caught.value.errors[0].message


def test_closing_the_platform_closes_the_payment_gateway(tmp_path: Path) -> None:
    gateway = SandboxPaymentGateway.from_url(f"sandbox:///{tmp_path}/provider.db")
    platform = Platform.from_adapters(order_store=InMemoryOrderStore(),
                                      inventory_store=InMemoryInventoryStore(),
                                      payment_gateway=gateway)
    seed(platform, {"MUG": 5})
    opened: list[int] = []

    def place(n: int) -> None:  # from threads of their own: a connection each
        platform.checkout.place_order(order(("MUG", 1), customer=f"c{n}"),
                                      idempotency_key=f"k{n}")
        opened.append(n)

    threads = [threading.Thread(target=place, args=(n,)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    records = gateway._records
    assert len(opened) == 3 and len(records._opened) >= 3  # type: ignore[attr-defined]
    platform.close()
    assert records._opened == []  # type: ignore[attr-defined]
    # and the sandbox still works afterwards (a new connection for whoever calls)
    assert len(gateway.authorizations()) == 3


def test_a_failed_checkout_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    platform = Platform.from_adapters(order_store=InMemoryOrderStore(),
                                      inventory_store=InMemoryInventoryStore(),
                                      payment_gateway=SandboxPaymentGateway())
    seed(platform, {"MUG": 5})
    with caplog.at_level(logging.INFO, logger="commerce_core.checkout"):
        for token in ("tok_declined", "tok_timeout"):
            with pytest.raises(Exception):  # noqa: B017, PT011 - each its own error
                platform.checkout.place_order(order(("MUG", 1), token=token),
                                              idempotency_key=token)
    failed = [(r.levelname, r.getMessage()) for r in caplog.records
              if "failed at checkout" in r.getMessage()]
    assert [level for level, _ in failed] == ["INFO", "WARNING"]
    assert "payment-declined" in failed[0][1] and "payment-unavailable" in failed[1][1]


def test_migrating_says_one_line_and_alembic_says_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO):
        for _ in range(2):  # the first start migrates; the second has nothing to do
            Platform.from_urls(orders=f"sqlite:///{tmp_path}/o.db",
                               inventory=f"sqlite:///{tmp_path}/i.db",
                               payments="sandbox://").close()
    lines = [(r.name, r.getMessage()) for r in caplog.records]
    assert not [line for line in lines if line[0].startswith("alembic")]
    migrated = [message for name, message in lines if name == "commerce_core.sqlalchemy"]
    assert len(migrated) == 2 and all("migrated from nothing to" in m for m in migrated)


def test_a_password_in_the_query_is_never_shown() -> None:
    with pytest.raises(StoreError) as caught:
        _orders("postgresql+psycopg://app@127.0.0.1:1/shop?password=S3cretPW&sslmode=disable")
    assert "S3cretPW" not in str(caught.value) and "password=hidden" in str(caught.value)


def test_sqlite_in_memory_is_refused_for_a_store() -> None:
    for url in ("sqlite:///", "sqlite:///:memory:"):
        with pytest.raises(InvalidInput, match="invalid database URL") as caught:
            _orders(url)
        assert "needs a file" in caught.value.errors[0].message


def test_a_driver_that_chokes_on_an_option_is_a_store_error() -> None:
    require_server("mariadb", *SERVERS["mariadb"])
    with pytest.raises(StoreError, match="check the URL's options"):
        _orders("mysql+pymysql://root@127.0.0.1:3306/mysql?charset=bogus")


@pytest.mark.parametrize(("name", "value"), [
    ("COMMERCE_MAX_CONNECTIONS", "²"), ("COMMERCE_THREADS", "²"),
    ("COMMERCE_CHECKOUT_RATE_LIMIT", "0/second"),
])
def test_odd_numbers_in_settings_name_their_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path,
    name: str, value: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COMMERCE_API_KEYS", "a-long-enough-admin-key-for-tests=admin")
    monkeypatch.setenv(name, value)
    assert cli.main(["migrate"]) == 2
    err = capsys.readouterr().err
    assert name in err and "Traceback" not in err


def test_one_answer_names_the_unknown_skus_with_the_other_problems() -> None:
    from commerce_core import Address, OrderItem, PlaceOrder, QuoteOrder  # noqa: PLC0415

    platform = Platform.from_adapters(order_store=InMemoryOrderStore(),
                                      inventory_store=InMemoryInventoryStore(),
                                      payment_gateway=SandboxPaymentGateway())
    seed(platform, {"MUG": 5})
    bad_address = Address(name="A", line1="", city="Berlin", postal_code="1", country="DEU")
    lines = [OrderItem("MUG", 1), OrderItem("NOPE", 1), OrderItem("bad sku", 1)]
    for call in (
        lambda: platform.checkout.place_order(PlaceOrder(
            customer_id="c", lines=lines, payment_token="tok_visa",
            shipping_address=bad_address), idempotency_key="k"),
        lambda: platform.checkout.quote(QuoteOrder(
            customer_id="c", lines=lines, shipping_address=bad_address)),
    ):
        with pytest.raises(InvalidInput) as caught:
            call()
        paths = {e.path for e in caught.value.errors}
        assert {"shipping_address.line1", "shipping_address.country",
                "lines[1].sku", "lines[2].sku"} <= paths
        assert "lines[0].sku" not in paths
        assert "unknown sku 'NOPE'" in [e.message for e in caught.value.errors
                                        if e.path == "lines[1].sku"]


def test_a_command_of_very_many_lines_is_refused_for_its_count_alone() -> None:
    from commerce_core import Address, OrderItem, QuoteOrder  # noqa: PLC0415

    platform = Platform.from_adapters(order_store=InMemoryOrderStore(),
                                      inventory_store=InMemoryInventoryStore(),
                                      payment_gateway=SandboxPaymentGateway())
    lookups: list[int] = []
    real = platform.inventory.get_products

    def counted(skus: Any) -> Any:
        lookups.append(len(skus))
        return real(skus)

    platform.inventory.get_products = counted  # type: ignore[method-assign]
    address = Address(name="A", line1="1", city="B", postal_code="1", country="DE")
    with pytest.raises(InvalidInput) as caught:
        platform.checkout.quote(QuoteOrder(
            customer_id="c", shipping_address=address,
            lines=[OrderItem(f"S{n}", 1) for n in range(70_000)]))
    assert len(caught.value.errors) <= 101  # the count, and at most the first 100 lines
    assert lookups == [100]  # one read, of the first 100 SKUs

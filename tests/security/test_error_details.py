"""OWASP API8: errors say what the client needs and no more. Input the database cannot
store is a 4xx; a 5xx says something generic and carries the request id, the specifics go
to the server's log; status words are plain words."""

from __future__ import annotations

import base64
import logging

import pytest

from commerce_core import Platform
from commerce_core.testing import SandboxPaymentGateway
from tests.gateway.conftest import ADMIN, ALICE, Client, idem, order_body


def _cursor(key: str) -> str:
    return base64.urlsafe_b64encode(key.encode()).decode().rstrip("=")


NUL = "ord\x00x"


@pytest.mark.parametrize("path", [f"/v1/orders?cursor={_cursor(NUL)}",
                                  "/v1/orders/ord%00x", "/v1/orders/%0a"])
def test_a_nul_or_control_character_in_a_path_or_cursor_is_a_4xx(
    client: Client, path: str
) -> None:
    answer = client.get(path, key=ADMIN)
    assert answer.status_code in (404, 422), answer.text
    assert "psycopg" not in answer.text and "sqlite" not in answer.text.lower()


def test_a_nul_in_an_admins_customer_filter_is_a_4xx(client: Client) -> None:
    answer = client.get("/v1/orders", key=ADMIN, params={"customer_id": "al\x00ice"})
    assert answer.status_code == 422
    assert [e["path"] for e in answer.json()["errors"]] == ["customer_id"]


def test_a_provider_outage_says_nothing_of_the_provider(
    shop: Platform, client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    gateway = shop.payment_gateway
    assert isinstance(gateway, SandboxPaymentGateway)
    gateway.outage.add("authorize")
    with caplog.at_level(logging.WARNING, logger="commerce_core.gateway"):
        answer = client.post("/v1/orders", key=ALICE, headers=idem("k1"),
                             json=order_body(("MUG", 1)))
    problem = answer.json()
    assert answer.status_code == 503 and "sandbox" not in answer.text
    assert problem["detail"] == "the payment provider did not answer in time; try again later"
    assert problem["request_id"] == answer.headers["X-Request-Id"]
    assert "injected outage" in caplog.text  # the specifics: in the log


def test_a_conflict_names_statuses_in_plain_words(client: Client) -> None:
    placed = client.post("/v1/orders", key=ALICE, headers=idem("k1"),
                         json=order_body(("MUG", 1))).json()
    answer = client.post(f"/v1/orders/{placed['id']}/deliver", key=ADMIN)
    assert answer.status_code == 409
    assert "<" not in answer.json()["detail"] and "OrderStatus" not in answer.json()["detail"]
    assert "'confirmed'" in answer.json()["detail"]


def test_readiness_does_not_quote_the_store(shop: Platform, client: Client) -> None:
    def broken() -> object:
        from commerce_core import StoreError  # noqa: PLC0415

        raise StoreError("connection to server at db.internal:5432 failed: password for x")

    shop.order_store.unit_of_work = broken  # type: ignore[method-assign, assignment]
    answer = client.get("/readyz")
    assert answer.status_code == 503
    assert "db.internal" not in answer.text and "password" not in answer.text

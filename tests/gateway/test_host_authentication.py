"""The host decides who is calling: its own sessions or tokens, sync or async, with the API
keys still honoured when it names nobody."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from starlette.requests import Request

from commerce_core import InvalidInput, Platform
from commerce_core_gateway import (
    Authenticator,
    GatewayConfig,
    NotAuthenticated,
    Principal,
    Role,
    create_app,
    parse_api_keys,
)
from tests.gateway.conftest import ADMIN, KEYS, Client, idem, order_body
from tests.gateway.test_http import assert_problem

#: The host's own sessions: cookie value -> its user.
SESSIONS = {"s-alice": ("alice", False), "s-root": ("root", True)}


def _from_session(request: Request) -> Principal | None:
    """What a host with server-side sessions writes: its user becomes the principal."""
    session = request.cookies.get("session")
    if session is None:
        return None
    if session not in SESSIONS:
        raise NotAuthenticated("your session has ended; sign in again")
    user, staff = SESSIONS[session]
    return Principal.admin() if staff else Principal.customer(user)


def _client(shop: Platform, hook: Authenticator, **config: Any) -> Client:
    return Client(create_app(shop, GatewayConfig(
        api_keys=parse_api_keys(KEYS), authenticate=hook, rate_limit="1000/second",
        checkout_rate_limit="1000/second", **config)))


def _as(session: str) -> dict[str, str]:
    return {"Cookie": f"session={session}"}


def test_a_sync_hook_s_users_are_the_principals(shop: Platform) -> None:
    threads: list[str] = []

    def hook(request: Request) -> Principal | None:
        threads.append(threading.current_thread().name)
        return _from_session(request)

    client = _client(shop, hook)
    placed = client.post("/v1/orders", json=order_body(("MUG", 1)),
                         headers={**_as("s-alice"), **idem("k1")})
    assert placed.status_code == 201, placed.text
    order = placed.json()
    assert order["customer_id"] == "alice"
    assert client.get(f"/v1/orders/{order['id']}", headers=_as("s-alice")).status_code == 200
    # the host's staff is an admin; the API keys still work beside the hook
    assert client.post(f"/v1/orders/{order['id']}/ship", headers=_as("s-root"),
                       json={"carrier": "DHL", "tracking_number": "T1"}).status_code == 200
    assert client.get("/v1/orders", key=ADMIN).json()["items"][0]["id"] == order["id"]
    # a plain function runs off the event loop (it may read a database)
    assert threads and all(name != "MainThread" for name in threads)


def test_an_async_hook_is_awaited(shop: Platform) -> None:
    async def hook(request: Request) -> Principal | None:
        return _from_session(request)

    client = _client(shop, hook)
    placed = client.post("/v1/orders", json=order_body(("MUG", 1)),
                         headers={**_as("s-alice"), **idem("k1")})
    assert placed.status_code == 201 and placed.json()["customer_id"] == "alice"

    class Verifier:  # an object with an async __call__ counts too
        async def __call__(self, request: Request) -> Principal | None:
            return _from_session(request)

    client = _client(shop, Verifier())
    assert client.get("/v1/orders", headers=_as("s-alice")).status_code == 200


def test_nobody_named_is_anonymous_and_bad_credentials_are_401(shop: Platform) -> None:
    client = _client(shop, _from_session, auth_failure_limit="3/minute")
    assert client.get("/v1/products").status_code == 200  # public routes answer anyone
    assert_problem(client.get("/v1/orders"), 401, "unauthenticated")
    refused = assert_problem(client.get("/v1/orders", headers=_as("s-stolen")), 401,
                             "unauthenticated")
    assert refused["detail"] == "your session has ended; sign in again"
    # a customer of the host on an admin route: 403, as with a key
    assert_problem(client.get("/v1/inventory/MUG", headers=_as("s-alice")), 403, "forbidden")
    # refusals count against the address, as failed keys do
    assert_problem(client.get("/v1/orders", headers=_as("s-stolen")), 429, "rate-limited")


@pytest.mark.parametrize("made", [
    lambda request: "alice",
    lambda request: Principal(Role.CUSTOMER, ""),
    lambda request: Principal(Role.CUSTOMER, "bad\x00id"),
    lambda request: Principal(Role.CUSTOMER, "\u2800"),  # visible to isprintable, blank to the core
    lambda request: Principal(Role.ADMIN, "alice"),
    lambda request: 1 / 0,
])
def test_a_host_hook_that_misbehaves_is_a_500_that_says_nothing(
    shop: Platform, made: Any, caplog: pytest.LogCaptureFixture,
) -> None:
    client = _client(shop, made)
    response = client.get("/v1/orders", headers=_as("s-alice"))
    assert_problem(response, 500, "internal-error")
    assert "alice" not in response.text and "Principal" not in response.text
    assert any("unhandled error" in r.getMessage() for r in caplog.records)


def test_a_customer_key_without_its_customer_is_refused_when_the_app_is_built(
    shop: Platform,
) -> None:
    with pytest.raises(InvalidInput, match="invalid API keys"):
        create_app(shop, GatewayConfig(api_keys={"k": Principal(Role.CUSTOMER, None)}))


def test_the_probes_never_wait_for_the_host_and_public_pages_forgive_a_stale_session(
    shop: Platform,
) -> None:
    calls: list[str] = []

    def hook(request: Request) -> Principal | None:
        calls.append(request.url.path)
        return _from_session(request)

    client = _client(shop, hook)
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200
    assert calls == []  # a session store that hangs cannot take the health checks down
    # a stale session on a public page reads it as anyone would; a protected one is 401
    assert client.get("/v1/products", headers=_as("s-stolen")).status_code == 200
    assert_problem(client.get("/v1/orders", headers=_as("s-stolen")), 401, "unauthenticated")

    def odd(request: Request) -> Principal | None:
        raise NotAuthenticated(None)  # type: ignore[arg-type]

    refused = assert_problem(_client(shop, odd).get("/v1/orders"), 401, "unauthenticated")
    assert refused["detail"] == "not authenticated"


def test_one_http_answer_names_the_unknown_skus_with_the_body_s_other_problems(
    client: Any,
) -> None:
    body = order_body(("MUG", 1), ("NOPE", 2))
    del body["shipping_address"]["city"]
    response = client.post("/v1/orders", key="al", json=body, headers=idem("k9"))
    assert_problem(response, 422, "invalid-input")
    paths = {error["path"] for error in response.json()["errors"]}
    assert {"shipping_address.city", "lines[1].sku"} <= paths and "lines[0].sku" not in paths

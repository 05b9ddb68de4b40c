"""OWASP API8: no redirect built from the Host header; every response says nosniff, and
responses to requests with credentials are not for caches."""

from __future__ import annotations

from tests.gateway.conftest import ADMIN, ALICE, Client


def test_a_trailing_slash_is_not_redirected_to_the_host_header(client: Client) -> None:
    answer = client.get("/v1/orders/", key=ALICE, headers={"Host": "evil.example"},
                        follow_redirects=False)
    assert answer.status_code == 404
    assert "location" not in answer.headers and "evil" not in answer.text


def test_every_response_says_nosniff_and_carries_a_request_id(client: Client) -> None:
    for answer in (client.get("/healthz"), client.get("/v1/products"),
                   client.get("/nowhere"), client.get("/openapi.json"),
                   client.get("/v1/orders", key="wrong")):
        assert answer.headers["X-Content-Type-Options"] == "nosniff"
        assert len(answer.headers["X-Request-Id"]) == 16


def test_responses_to_requests_with_credentials_are_not_cached(client: Client) -> None:
    assert client.get("/v1/orders", key=ALICE).headers["Cache-Control"] == "no-store"
    assert client.get("/v1/inventory/MUG", key=ADMIN).headers["Cache-Control"] == "no-store"
    assert client.get("/v1/orders", key="wrong").headers["Cache-Control"] == "no-store"
    assert "Cache-Control" not in client.get("/v1/products").headers

"""Outbound webhooks over HTTP (the contract's "Outbound webhooks"): an admin puts an
endpoint, reads its delivery log newest first and replays its dead letters; the secret is
never shown; bad input is a 422 naming every field, nothing written."""

from __future__ import annotations

from datetime import timedelta

import pytest

from commerce_core import Platform
from commerce_core.events import InProcessPublisher
from commerce_core.webhooks import WebhookPolicy, WebhookService
from tests.gateway.conftest import ADMIN, ALICE, Client, idem, order_body
from tests.gateway.test_http import assert_problem
from tests.gateway.test_pricing_http import paths
from tests.webhook_receiver import receiver

SECRET = "whsec_http_0123456789abcdef"


def endpoint_body(url: str, **fields: object) -> dict[str, object]:
    return {"url": url, "secret": SECRET, "events": ["order.*"], **fields}


def test_an_admin_puts_an_endpoint_and_reads_it_back_without_its_secret(
    client: Client
) -> None:
    created = client.put("/v1/webhook-endpoints/erp", key=ADMIN,
                         json=endpoint_body("https://erp.example/hooks"))
    assert created.status_code == 201, created.text
    body = created.json()
    assert set(body) == {"id", "url", "events", "active", "created_at", "updated_at"}
    assert (body["id"], body["url"], body["events"], body["active"]) == (
        "erp", "https://erp.example/hooks", ["order.*"], True)
    replaced = client.put("/v1/webhook-endpoints/erp", key=ADMIN, json=endpoint_body(
        "https://erp.example/v2", events=["order.confirmed", "return.*"], active=False))
    assert replaced.status_code == 200
    assert replaced.json()["created_at"] == body["created_at"]
    found = client.get("/v1/webhook-endpoints/erp", key=ADMIN).json()
    assert (found["url"], found["events"], found["active"]) == (
        "https://erp.example/v2", ["order.confirmed", "return.*"], False)
    assert SECRET not in client.get("/v1/webhook-endpoints", key=ADMIN).text
    assert [e["id"] for e in client.get("/v1/webhook-endpoints", key=ADMIN).json()["items"]] \
        == ["erp"]


def test_only_admins_manage_endpoints(client: Client) -> None:
    for method, path in [("PUT", "/v1/webhook-endpoints/erp"), ("GET", "/v1/webhook-endpoints"),
                         ("GET", "/v1/webhook-endpoints/erp/deliveries"),
                         ("POST", "/v1/webhook-endpoints/erp/replay")]:
        kwargs = {"json": endpoint_body("https://erp.example/")} if method == "PUT" else {}
        assert client.request(method, path, **kwargs).status_code == 401  # type: ignore[arg-type]
        assert client.request(method, path, key=ALICE, **kwargs  # type: ignore[arg-type]
                              ).status_code == 403
    assert client.get("/v1/webhook-endpoints", key=ADMIN).json() == {"items": []}


@pytest.mark.parametrize(("body", "fields"), [
    ({"url": "ftp://erp.example/", "secret": "short", "events": ["order.confirmd"]},
     ["url", "secret", "events[0]"]),
    ({"url": "https://user:pw@erp.example/", "secret": SECRET, "events": ["order.*"]}, ["url"]),
    ({"url": "https://erp.example/", "secret": SECRET, "events": []}, ["events"]),
    ({"url": "https://erp.example/", "secret": SECRET + " x", "events": ["*"]}, ["secret"]),
    ({"url": "https://erp.example/", "secret": SECRET, "events": ["*"] * 51}, ["events"]),
    ({"url": "https://erp.example/", "secret": SECRET, "events": ["*"], "active": "yes"},
     ["active"]),
    ({"secret": SECRET, "events": ["*"]}, ["url"]),
    # a string is not a list of its characters, nor an object a list of its keys
    ({"url": "https://erp.example/", "secret": SECRET, "events": "*"}, ["events"]),
    ({"url": "https://erp.example/", "secret": SECRET, "events": {"*": 1}}, ["events"]),
])
def test_a_bad_endpoint_is_a_422_naming_its_fields_and_nothing_is_written(
    client: Client, body: dict[str, object], fields: list[str]
) -> None:
    answer = client.put("/v1/webhook-endpoints/erp", key=ADMIN, json=body)
    problem = assert_problem(answer, 422, "invalid-input")
    assert paths(problem) == fields
    assert client.get("/v1/webhook-endpoints", key=ADMIN).json() == {"items": []}
    assert_problem(client.put("/v1/webhook-endpoints/bad%20id", key=ADMIN,
                              json=endpoint_body("https://erp.example/")), 422, "invalid-input")


def test_unknown_endpoints_are_404(client: Client) -> None:
    for method, path in [("GET", "/v1/webhook-endpoints/nope"),
                         ("GET", "/v1/webhook-endpoints/nope/deliveries"),
                         ("POST", "/v1/webhook-endpoints/nope/replay")]:
        assert_problem(client.request(method, path, key=ADMIN), 404, "not-found")


def test_the_delivery_log_shows_attempts_and_a_replay_sends_dead_letters(
    client: Client, shop: Platform
) -> None:
    assert shop.webhooks is not None
    service = WebhookService(shop.webhooks.store, policy=WebhookPolicy(
        max_attempts=1, jitter=timedelta(0)))
    with receiver(SECRET) as erp:
        assert client.put("/v1/webhook-endpoints/erp", key=ADMIN, json=endpoint_body(
            erp.url, events=["order.confirmed", "order.cancelled"])).status_code == 201
        placed = client.post("/v1/orders", key=ALICE, json=order_body(("MUG", 1)),
                             headers=idem("o1")).json()
        publisher = InProcessPublisher()
        publisher.subscribe("*", service.enqueue)  # type: ignore[arg-type]  # returns a count
        for relay in shop.outbox_relays(lambda: publisher):
            relay.run_once()
        erp.answer = 503
        service.deliver_due()  # one attempt: a dead letter
        log = client.get("/v1/webhook-endpoints/erp/deliveries", key=ADMIN).json()
        assert log["next_cursor"] is None
        (dead,) = log["items"]
        assert (dead["event_type"], dead["status"], dead["attempts"], dead["response_status"],
                dead["last_error"], dead["next_attempt_at"], dead["delivered_at"]) == (
            "order.confirmed", "failed", 1, 503, "answered 503", None, None)
        erp.answer = 204
        refused: list[dict[str, object]] = [
            {"delivery_ids": []}, {"delivery_ids": "x"}, {"delivery_ids": ["\u0000"]},
            {"delivery_ids": ["x"] * 101}, {"ids": ["x"]}]
        for bad in refused:
            assert_problem(client.post("/v1/webhook-endpoints/erp/replay", key=ADMIN,
                                       json=bad), 422, "invalid-input")
        assert client.post("/v1/webhook-endpoints/erp/replay", key=ADMIN, json={
            "delivery_ids": ["whd_nope"]}).json() == {"replayed": 0}
        assert client.post("/v1/webhook-endpoints/erp/replay", key=ADMIN, json={
            "delivery_ids": [dead["id"]]}).json() == {"replayed": 1}
        assert client.post("/v1/webhook-endpoints/erp/replay", key=ADMIN).json() == {
            "replayed": 0}  # queued again already
        pending = client.get("/v1/webhook-endpoints/erp/deliveries", key=ADMIN).json()
        assert pending["items"][0]["status"] == "pending"
        assert pending["items"][0]["next_attempt_at"] is not None
        service.deliver_due()
        (sent,) = client.get("/v1/webhook-endpoints/erp/deliveries?limit=1", key=ADMIN
                             ).json()["items"]
        assert (sent["status"], sent["attempts"], sent["response_status"]) == (
            "delivered", 1, 204)
        assert [b["data"]["order_id"] for b in erp.received] == [placed["id"]]
        assert_problem(client.get("/v1/webhook-endpoints/erp/deliveries?cursor=%21%21",
                                  key=ADMIN), 422, "invalid-input")
    service.close()

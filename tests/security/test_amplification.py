"""OWASP API4: an invalid body of up to 64 KiB gets a problem of a few KiB, listing at most
50 errors, the rest counted; collections are measured before their items are looked at."""

from __future__ import annotations

import json

from tests.gateway.conftest import ADMIN, ALICE, Client, idem, order_body


def test_a_body_of_21000_empty_lines_gets_one_small_problem(client: Client) -> None:
    body = {**order_body(("MUG", 1)), "lines": [{}] * 21_000}
    raw = json.dumps(body, separators=(",", ":")).encode()
    assert 60_000 < len(raw) < 64 * 1024
    answer = client.post("/v1/orders", key=ALICE, headers={
        **idem("k1"), "Content-Type": "application/json"}, content=raw)
    assert answer.status_code == 422
    assert len(answer.content) < 4096
    problem = answer.json()
    assert {"path": "lines", "message": "must have at most 100 items"} in problem["errors"]
    assert len(problem["errors"]) <= 50


def test_a_body_of_thousands_of_errors_lists_fifty_and_counts_the_rest(client: Client) -> None:
    body = {f"f{n}": n for n in range(4000)}  # 4,000 unknown fields: 4,000 errors
    answer = client.put("/v1/products/CUP", key=ADMIN, json={"name": "Cup", **body,
                                                             "price": {"amount": 1,
                                                                       "currency": "EUR"}})
    assert answer.status_code == 422
    problem = answer.json()
    assert len(problem["errors"]) == 50
    assert problem["errors_omitted"] == 3950
    assert len(answer.content) < 6 * 1024
    # the detail names the first problem and counts the others; it does not repeat them
    assert problem["detail"].count("unknown field") == 1
    assert "3999 more" in problem["detail"]


def test_what_a_client_sent_is_echoed_back_short(client: Client) -> None:
    """An unknown key of 16,000 emoji is not a 400 KiB problem: names are cut, and the
    problem is UTF-8 as it is, not escaped six bytes to a character."""
    name = "\U0001f600" * 16_000
    answer = client.put("/v1/warehouses/BER", key=ADMIN,
                        json={"name": "Berlin", name: 1})
    assert answer.status_code == 422 and len(answer.content) < 2048
    (error,) = answer.json()["errors"]
    assert error["path"].startswith("\U0001f600") and len(error["path"]) <= 100
    twice = client.put("/v1/warehouses/BER", key=ADMIN, headers={
        "Content-Type": "application/json"},
        content=f'{{"name": "x", "{name[:7000]}": 1, "{name[:7000]}": 2}}'.encode())
    assert twice.status_code == 400 and len(twice.content) < 2048
    long_path = client.get("/nowhere/" + "a" * 60_000)
    assert long_path.status_code == 404 and len(long_path.content) < 2048


def test_a_few_errors_are_all_listed_with_nothing_omitted(client: Client) -> None:
    answer = client.put("/v1/products/CUP", key=ADMIN, json={"name": "", "price": {}})
    problem = answer.json()
    assert answer.status_code == 422 and "errors_omitted" not in problem
    assert {e["path"] for e in problem["errors"]} == {
        "name", "price.amount", "price.currency"}

"""``COMMERCE_LOG_FORMAT=json``: every line the server writes is one JSON object, with the
request id, and the order id where an order's saga was running; ``X-Request-Id`` is taken
from the request only behind a trusted proxy, and only when it is a plain token."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.conftest import ADMIN_KEY, ALICE_KEY, Server, sqlite_env
from tests.e2e.test_server import ADDRESS, auth


def _lines(server: Server) -> list[dict[str, Any]]:
    return [json.loads(line) for line in server.output().splitlines() if line.strip()]


def test_json_logs_carry_the_request_and_order_ids(tmp_path: Path) -> None:
    env = {**sqlite_env(tmp_path), "COMMERCE_LOG_FORMAT": "json",
           "COMMERCE_TRUSTED_PROXIES": "127.0.0.1"}
    server = Server(tmp_path, env)
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            admin = auth(ADMIN_KEY, **{"Idempotency-Key": "stock-1"})
            assert http.put("/v1/warehouses/BER", headers=auth(ADMIN_KEY),
                            json={"name": "Berlin"}).status_code == 201
            assert http.put("/v1/products/MUG-01", headers=auth(ADMIN_KEY), json={
                "name": "Mug", "price": {"amount": 1250, "currency": "EUR"}}).status_code == 201
            assert http.post("/v1/inventory/MUG-01/adjustments", headers=admin, json={
                "warehouse": "BER", "delta": 5, "reason": "stock"}).status_code == 201
            mine = http.get("/v1/products", headers={"X-Request-Id": "lb-7f3a.42"})
            assert mine.headers["x-request-id"] == "lb-7f3a.42"  # the proxy's id, kept
            forged = http.get("/v1/products", headers={"X-Request-Id": 'x" level=admin'})
            assert re.fullmatch(r"[0-9a-f]{16}", forged.headers["x-request-id"])
            failed = http.post("/v1/orders", headers=auth(ALICE_KEY, **{
                "Idempotency-Key": "t1", "X-Request-Id": "lb-timeout-1"}), json={
                "lines": [{"sku": "MUG-01", "quantity": 1}], "payment": {"token": "tok_timeout"},
                "shipping_address": ADDRESS})
            assert failed.status_code == 503
            order_id = failed.json()["order_id"]
    finally:
        server.stop()
    lines = _lines(server)  # every line parses: nothing else was written
    assert lines and all({"time", "level", "logger", "message", "request_id", "order_id",
                          "trace_id"} <= set(line) for line in lines)
    access = [line for line in lines if line["logger"] == "uvicorn.access"]
    assert any(line["request_id"] == "lb-7f3a.42" and "/v1/products" in line["message"]
               for line in access)
    saga = [line for line in lines if line["order_id"] == order_id]
    assert saga, "no line named the order"
    assert all(line["request_id"] == "lb-timeout-1" for line in saga)
    assert any("failed at checkout: payment-unavailable" in line["message"] for line in saga)


def test_without_a_trusted_proxy_the_request_id_is_always_the_server_s(tmp_path: Path) -> None:
    server = Server(tmp_path, {**sqlite_env(tmp_path), "COMMERCE_LOG_FORMAT": "json"})
    try:
        answer = httpx.get(f"{server.url}/v1/products", headers={"X-Request-Id": "chosen-1"},
                           timeout=10)
        assert answer.headers["x-request-id"] != "chosen-1"
    finally:
        server.stop()
    assert all(isinstance(line, dict) for line in _lines(server))


def test_the_demo_s_banner_is_json_too(tmp_path: Path) -> None:
    env = {**sqlite_env(tmp_path), "COMMERCE_LOG_FORMAT": "json", "COMMERCE_API_KEYS": ""}
    server = Server(tmp_path, env, "--demo")
    server.stop()
    lines = _lines(server)
    assert any("admin console:" in line["message"] for line in lines)
    assert any("Authorization: Bearer" in line["message"] for line in lines)

"""OWASP API4: a client cannot choose the address its anonymous rate limit counts, unless
it speaks through a proxy the operator trusts."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.e2e.conftest import Server, sqlite_env


def _statuses(tmp_path: Path, **env: str) -> list[int]:
    server = Server(tmp_path, {**sqlite_env(tmp_path), "COMMERCE_RATE_LIMIT": "3/minute",
                               **env}, "--demo")
    try:
        return [httpx.get(f"{server.url}/v1/products", timeout=10,
                          headers={"X-Forwarded-For": f"203.0.113.{n}"}).status_code
                for n in range(5)]
    finally:
        server.stop()


def test_forwarded_addresses_are_ignored_by_default(tmp_path: Path) -> None:
    assert _statuses(tmp_path) == [200, 200, 200, 429, 429]


def test_forwarded_addresses_count_from_a_trusted_proxy(tmp_path: Path) -> None:
    assert _statuses(tmp_path, COMMERCE_TRUSTED_PROXIES="127.0.0.1") == [200] * 5

"""OWASP API2: keys cannot be guessed at full speed, nor found a character at a time, and a
server does not start with keys too short to resist guessing."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

from commerce_core import Platform
from commerce_core_gateway import parse_api_keys
from tests.e2e.conftest import SERVER, sqlite_env
from tests.gateway.conftest import ADMIN, ALICE, KEYS, Client
from tests.security.conftest import gateway


def test_guessed_keys_are_refused_then_limited(shop: Platform) -> None:
    client = gateway(shop, auth_failure_limit="20/minute")
    codes = [client.get("/v1/orders", key=f"guess-{n:04d}").status_code for n in range(150)]
    assert codes[:20] == [401] * 20
    assert set(codes[20:]) == {429}
    limited = client.get("/v1/orders", key="guess-again")
    assert limited.headers["Retry-After"] and limited.json()["type"] == "/problems/rate-limited"


def test_forbidden_calls_count_as_failures_too(shop: Platform) -> None:
    client = gateway(shop, auth_failure_limit="20/minute")
    codes = [client.get("/v1/inventory/MUG", key=ALICE).status_code for _ in range(150)]
    assert codes[:20] == [403] * 20 and set(codes[20:]) == {429}


def test_an_address_past_its_failures_is_refused_even_with_the_right_key(
    shop: Platform,
) -> None:
    """Were the right key answered 200 while wrong ones get 429, guessing would go on at
    full speed, 429 simply meaning "wrong"."""
    client = gateway(shop, auth_failure_limit="5/minute")
    assert client.get("/v1/orders", key=ADMIN).status_code == 200
    for n in range(10):
        client.get("/v1/orders", key=f"guess-{n}")
    blocked = client.get("/v1/orders", key=ADMIN)
    assert blocked.status_code == 429 and blocked.headers["Retry-After"]
    assert client.get("/v1/products").status_code == 200  # no key sent: nothing to guess


def test_keys_are_looked_up_by_digest_not_compared_by_prefix(client: Client) -> None:
    """The gateway keeps no key to compare a guess with, only SHA-256 digests: a lookup's
    time says nothing about how much of a key a guess got right."""
    ring = client.app.state.gateway.keys
    assert set(vars(ring)["_by_digest"]) == {
        hashlib.sha256(key.encode()).digest() for key in parse_api_keys(KEYS)}
    assert ring.principal(ADMIN) is not None
    assert ring.principal(ADMIN[:-1]) is None and ring.principal(ADMIN + "x") is None


def _start(tmp_path: Path, keys: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **sqlite_env(tmp_path), "COMMERCE_API_KEYS": keys}
    return subprocess.run([SERVER, "migrate", *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60, check=False)


def test_the_server_refuses_to_start_with_keys_too_short_to_resist_guessing(
    tmp_path: Path,
) -> None:
    refused = _start(tmp_path, "adm=admin,a-long-enough-key-for-alice=customer:alice")
    assert refused.returncode == 2
    assert "admin" in refused.stderr and "24 characters" in refused.stderr
    assert "customer:alice" not in refused.stderr
    assert _start(tmp_path, "a-long-enough-key-for-the-admin=admin").returncode == 0
    assert _start(tmp_path, "adm=admin", "--demo").returncode == 0  # a demo is a demo

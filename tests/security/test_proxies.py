"""OWASP API4: a client cannot choose the address its anonymous rate limit counts, unless
it speaks through a proxy the operator trusts."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette

from commerce_core import Platform
from commerce_core_gateway import GatewayConfig, create_app
from commerce_server.asgi import build_app
from commerce_server.config import Settings
from tests.e2e.conftest import Server, client_of, sqlite_env


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


def _request_ids(tmp_path: Path, proxies: str,
                 requests: list[tuple[str, dict[str, str]]]) -> list[str]:
    """The X-Request-Id answered to each request, sent from the given peer address."""
    app = build_app(Settings.from_env({**sqlite_env(tmp_path),
                                       "COMMERCE_TRUSTED_PROXIES": proxies}))

    async def run() -> list[str]:
        answers = []
        for peer, headers in requests:
            transport = httpx.ASGITransport(app=app, client=(peer, 40000))
            async with httpx.AsyncClient(transport=transport, base_url="http://shop") as http:
                answer = await http.get("/v1/products", headers=headers)
                assert answer.status_code == 200, answer.text
                answers.append(answer.headers["x-request-id"])
        return answers

    return asyncio.run(run())


def test_a_request_id_is_taken_only_from_the_trusted_proxy_itself(tmp_path: Path) -> None:
    ids = _request_ids(tmp_path, "10.0.0.0/8", [
        # through the proxy: its id is kept, whoever the client was
        ("10.0.0.5", {"X-Forwarded-For": "203.0.113.9", "X-Request-Id": "lb-1"}),
        # around the proxy, straight to the server: the server's own id
        ("203.0.113.9", {"X-Request-Id": "forged-1"}),
        # around the proxy, claiming to be forwarded by it
        ("203.0.113.9", {"X-Forwarded-For": "10.0.0.5", "X-Request-Id": "forged-2"}),
        # through the proxy, but not a plain token: the server's own id
        ("10.0.0.5", {"X-Request-Id": "a b\tc"}),
        # around the proxy, on a dual-stack socket
        ("::ffff:203.0.113.9", {"X-Forwarded-For": "10.0.0.5", "X-Request-Id": "forged-3"}),
        # the proxy, on a dual-stack socket (--host ::): an IPv4 peer named the IPv6 way
        ("::ffff:10.0.0.5", {"X-Forwarded-For": "203.0.113.9", "X-Request-Id": "lb-2"}),
    ])
    assert (ids[0], ids[-1]) == ("lb-1", "lb-2")
    assert all(re.fullmatch(r"[0-9a-f]{16}", made) for made in ids[1:-1]), ids


def test_a_gateway_compares_the_peer_with_its_proxies(tmp_path: Path) -> None:
    platform = Platform.from_urls(orders=f"sqlite:///{tmp_path}/o.db",
                                  inventory=f"sqlite:///{tmp_path}/i.db", payments="sandbox://")
    with pytest.raises(ValueError, match="trusted_proxies"):
        create_app(platform, GatewayConfig(trusted_proxies="10.0.0.0/8, not-an-address"))

    async def request_id(app: Starlette, peer: str) -> str:
        transport = httpx.ASGITransport(app=app, client=(peer, 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://shop") as http:
            answer = await http.get("/healthz", headers={"X-Request-Id": "chosen"})
            return answer.headers["x-request-id"]

    listed = create_app(platform, GatewayConfig(trusted_proxies=["2001:db8::/32",
                                                                 "192.0.2.7"]))
    anyone = create_app(platform, GatewayConfig(trusted_proxies="*"))
    nobody = create_app(platform, GatewayConfig())
    try:
        assert asyncio.run(request_id(listed, "192.0.2.7")) == "chosen"
        assert asyncio.run(request_id(listed, "2001:db8::1")) == "chosen"
        assert asyncio.run(request_id(listed, "192.0.2.8")) != "chosen"
        assert asyncio.run(request_id(listed, "testclient")) != "chosen"  # not an address
        assert asyncio.run(request_id(anyone, "198.51.100.1")) == "chosen"
        assert asyncio.run(request_id(nobody, "192.0.2.7")) != "chosen"
    finally:
        platform.close()


def test_a_dual_stack_socket_s_ipv4_peers_are_counted_as_ipv4(tmp_path: Path) -> None:
    """With ``--host ::`` an IPv4 proxy's connections come as ``::ffff:10.0.0.5``: still the
    trusted proxy, so each client behind it has a rate limit of its own."""
    app = build_app(Settings.from_env({**sqlite_env(tmp_path), "COMMERCE_RATE_LIMIT": "2/minute",
                                       "COMMERCE_TRUSTED_PROXIES": "10.0.0.5"}))

    async def run() -> list[int]:
        statuses = []
        async with client_of(app, ("::ffff:10.0.0.5", 40000)) as http:
            for n in range(4):
                answer = await http.get("/v1/products",
                                        headers={"X-Forwarded-For": f"203.0.113.{n}"})
                statuses.append(answer.status_code)
            for _ in range(3):  # one client, through the proxy: its own limit
                answer = await http.get("/v1/products",
                                        headers={"X-Forwarded-For": "198.51.100.1"})
                statuses.append(answer.status_code)
        return statuses

    assert asyncio.run(run()) == [200, 200, 200, 200, 200, 200, 429]


@pytest.mark.parametrize(("proxies", "peer"), [
    ("10.0.0.1/8", "10.9.9.9"),  # a network written with host bits: 10.0.0.0/8 for all
    ("fe80::1", "fe80::1%eth0"),  # a link-local proxy, its zone on the connection
])
def test_the_proxies_are_read_alike_for_request_ids_and_forwarded_addresses(
    tmp_path: Path, proxies: str, peer: str,
) -> None:
    app = build_app(Settings.from_env({**sqlite_env(tmp_path), "COMMERCE_RATE_LIMIT": "1/minute",
                                       "COMMERCE_TRUSTED_PROXIES": proxies}))

    async def run() -> list[tuple[int, str]]:
        answers = []
        async with client_of(app, (peer, 40000)) as http:
            for n in range(3):  # three clients behind the proxy: a limit each
                answer = await http.get("/v1/products", headers={
                    "X-Forwarded-For": f"203.0.113.{n}", "X-Request-Id": f"lb-{n}"})
                answers.append((answer.status_code, answer.headers["x-request-id"]))
        return answers

    assert asyncio.run(run()) == [(200, "lb-0"), (200, "lb-1"), (200, "lb-2")]

"""Rate limits through Redis are shared by every gateway instance (worker or host)."""

from __future__ import annotations

import uuid

from commerce_core_gateway import GatewayConfig, create_app, parse_api_keys
from tests.conftest import REDIS_START, require_server
from tests.gateway.conftest import Client, make_platform, seed_shop


def test_two_gateways_share_one_limit_through_redis() -> None:
    require_server("Redis", 6379, REDIS_START)
    who = uuid.uuid4().hex  # a principal of its own, so earlier runs do not count
    platform = make_platform()
    seed_shop(platform)
    config = GatewayConfig(api_keys=parse_api_keys(f"k=customer:{who}"),
                           rate_limits_url="redis://127.0.0.1:6379", rate_limit="4/minute")
    first, second = Client(create_app(platform, config)), Client(create_app(platform, config))
    codes = [client.get("/v1/products", key="k").status_code
             for client in (first, second, first, second, first)]
    assert codes == [200, 200, 200, 200, 429]


def test_an_unreachable_limiter_lets_requests_through() -> None:
    platform = make_platform()
    config = GatewayConfig(rate_limits_url="redis://127.0.0.1:1", rate_limit="1/minute")
    client = Client(create_app(platform, config))
    responses = [client.get("/v1/products") for _ in range(3)]
    assert [r.status_code for r in responses] == [200, 200, 200]
    assert "ratelimit-limit" not in responses[0].headers

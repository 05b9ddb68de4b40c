"""The in-process gateway of the gateway tests, and the real server of the e2e tests, as a
hostile client meets them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from commerce_core import Platform
from commerce_core_gateway import GatewayConfig, create_app, parse_api_keys
from tests.gateway.conftest import KEYS, Client, make_platform, seed_shop


@pytest.fixture
def shop() -> Iterator[Platform]:
    platform = make_platform()
    seed_shop(platform)
    yield platform
    platform.close()


def gateway(shop: Platform, **config: object) -> Client:
    """A client of a gateway in front of ``shop`` (generous rate limits unless given)."""
    options: dict[str, object] = {"rate_limit": "1000/second",
                                  "checkout_rate_limit": "1000/second", **config}
    return Client(create_app(shop, GatewayConfig(api_keys=parse_api_keys(KEYS),
                                                 **options)))  # type: ignore[arg-type]


@pytest.fixture
def client(shop: Platform) -> Client:
    return gateway(shop)

"""The local Stripe stand-in as a real server in a subprocess, reset before every test."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from commerce_core_stripe import StripePaymentGateway
from tests.e2e.conftest import free_port


class LocalStripe:
    """A running ``commerce_core_stripe.provider`` and its control switches."""

    def __init__(self) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.url = f"stripe+http://sk_test_local@127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "commerce_core_stripe.provider", "--port", str(self.port)])
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{self.base}/_control/state", timeout=1)
                return
            except httpx.TransportError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    self.stop()
                    raise RuntimeError("the local Stripe did not start") from None
                time.sleep(0.05)

    def control(self, action: str, **data: Any) -> Any:
        response = httpx.post(f"{self.base}/_control/{action}", json=data, timeout=10)
        response.raise_for_status()
        return response.json()

    def faults(self, **rates: float) -> None:
        self.control("faults", **rates)

    def state(self) -> dict[str, Any]:
        return httpx.get(f"{self.base}/_control/state", timeout=10).json()  # type: ignore[no-any-return]

    def gateway(self, timeout: float = 2.0) -> StripePaymentGateway:
        return StripePaymentGateway.from_url(f"{self.url}?timeout={timeout}")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


@pytest.fixture(scope="session")
def local_stripe() -> Iterator[LocalStripe]:
    provider = LocalStripe()
    yield provider
    provider.stop()


@pytest.fixture
def stripe(local_stripe: LocalStripe) -> LocalStripe:
    local_stripe.control("reset")
    return local_stripe

"""The conformance suite, run by commerce-core's pytest plugin, against a FakePay server
(``python examples/walkthrough/fakepay_server.py --port 8765``, or set ``FAKEPAY_URL``)."""

import json
import os
import urllib.request
from typing import ClassVar

import pytest

from commerce_core.testing.conformance import PaymentGatewayConformance

URL = os.environ.get("FAKEPAY_URL", "fakepay://127.0.0.1:8765")


@pytest.fixture(autouse=True)
def _fresh_fakepay() -> None:
    """The suite's idempotency keys are fixed ("k-auth", ...): every test starts from an
    empty FakePay (its test switch), as it would from an empty store."""
    reset = urllib.request.Request(  # noqa: S310 - FakePay's http:// URL
        URL.replace("fakepay://", "http://", 1).rstrip("/") + "/_control", method="POST",
        data=json.dumps({"reset": True}).encode(), headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(reset, timeout=5):  # noqa: S310
            pass
    except OSError as exc:  # URLError too
        pytest.fail(f"FakePay does not answer at {URL} ({exc}): start it with python "
                    "examples/walkthrough/fakepay_server.py --port 8765", pytrace=False)


class TestFakepayGateway(PaymentGatewayConformance):
    payment_gateway_url = URL
    # tokens your provider's test mode approves and declines
    gateway_tokens: ClassVar[dict[str, str]] = {"approve": "tok_ok", "decline": "tok_no"}

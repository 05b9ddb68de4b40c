"""The sandbox keeps its records like a provider: in memory, or in a file that several
processes share and that outlives them."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from commerce_core import InvalidInput, Money, PaymentUnavailable
from commerce_core.testing import SandboxPaymentGateway

EUR = Money(500, "EUR")


def test_two_instances_on_one_file_are_one_provider(tmp_path: Path) -> None:
    first = SandboxPaymentGateway(tmp_path / "sandbox.db")
    second = SandboxPaymentGateway(tmp_path / "sandbox.db")
    auth = first.authorize(token="tok_visa", amount=EUR, idempotency_key="k", reference="o1")
    second.capture(authorization_id=auth.id, amount=EUR, idempotency_key="k:capture")
    assert second.authorize(token="tok_visa", amount=EUR, idempotency_key="k",
                            reference="o1") == auth  # replayed, not a second charge
    reopened = SandboxPaymentGateway(tmp_path / "sandbox.db")
    (record,) = reopened.authorizations()
    assert (record.id, record.status, record.captured) == (auth.id, "captured", 500)


def test_a_flaky_token_counts_its_attempts_in_the_file(tmp_path: Path) -> None:
    path = tmp_path / "sandbox.db"
    for _ in range(2):
        with pytest.raises(PaymentUnavailable):
            SandboxPaymentGateway(path).authorize(token="tok_flaky", amount=EUR,
                                                  idempotency_key="f", reference="o")
    auth = SandboxPaymentGateway(path).authorize(token="tok_flaky", amount=EUR,
                                                 idempotency_key="f", reference="o")
    assert auth.amount == EUR


def _authorize_many(path: str, worker: int) -> None:
    gateway = SandboxPaymentGateway(path)
    for i in range(20):
        gateway.authorize(token="tok_visa", amount=EUR, idempotency_key=f"w{worker}-{i}",
                          reference=f"o{worker}-{i}")
        gateway.authorize(token="tok_visa", amount=EUR, idempotency_key="shared",
                          reference="o-shared")


def test_processes_sharing_the_file_never_charge_twice(tmp_path: Path) -> None:
    path = str(tmp_path / "sandbox.db")
    SandboxPaymentGateway(path)  # create the file before the processes race
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_authorize_many, args=(path, n)) for n in range(3)]
    for process in workers:
        process.start()
    for process in workers:
        process.join(timeout=60)
        assert process.exitcode == 0
    records = SandboxPaymentGateway(path).authorizations()
    assert len(records) == 3 * 20 + 1
    assert len({r.id for r in records}) == len(records)
    assert [r.reference for r in records].count("o-shared") == 1


@pytest.mark.parametrize(
    ("url", "where"),
    [("sandbox://", None), ("sandbox:///state/sandbox.db", "state/sandbox.db"),
     ("sandbox:////{tmp}/abs.db", "{tmp}/abs.db")],
)
def test_sandbox_urls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, url: str,
                      where: str | None) -> None:
    monkeypatch.chdir(tmp_path)
    gateway = SandboxPaymentGateway.from_url(url.replace("{tmp}", str(tmp_path).lstrip("/")))
    gateway.authorize(token="tok_visa", amount=EUR, idempotency_key="k", reference="o")
    if where is not None:
        assert Path(where.replace("{tmp}", str(tmp_path))).exists()


@pytest.mark.parametrize("url", ["sandbox://somehost", "sandbox:///"])
def test_bad_sandbox_urls_are_invalid_input(url: str) -> None:
    with pytest.raises(InvalidInput):
        SandboxPaymentGateway.from_url(url)

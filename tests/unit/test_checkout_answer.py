"""`Checkout.place_order(answer=)`: the host's answer is stored under the key in the
transaction that confirms the order, and nowhere else."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from commerce_core import (
    IdempotencyKeyInUse,
    Order,
    OrderStatus,
    Payment,
    PaymentDeclined,
    PaymentStatus,
    Platform,
    RetryPolicy,
)
from commerce_core.testing import InMemoryInventoryStore, InMemoryOrderStore, SandboxPaymentGateway
from tests.conftest import order, seed
from tests.unit.test_store_retry import FlakyStore


def _answer(seen: list[tuple[Order, Payment]]) -> Any:
    def answer(placed: Order, payment: Payment) -> tuple[int, str]:
        seen.append((placed, payment))
        return 201, f'{{"id": "{placed.id}", "payment": "{payment.status.value}"}}'
    return answer


def test_the_answer_is_stored_with_the_confirmed_order(platform: Platform) -> None:
    seed(platform)
    seen: list[tuple[Order, Payment]] = []
    placed = platform.checkout.place_order(order(("MUG", 1)), idempotency_key="k",
                                           answer=_answer(seen))
    assert placed.status is OrderStatus.CONFIRMED
    ((answered, payment),) = seen
    assert answered == placed  # the order as confirmed, its version included
    assert payment == platform.orders.payment(placed)
    assert payment.status is PaymentStatus.AUTHORIZED
    record = platform.orders.idempotency_record("alice", "k")
    assert record is not None
    assert (record.response_status, record.response_body) == (
        201, f'{{"id": "{placed.id}", "payment": "authorized"}}')
    # a repeat is answered from the record by the host: the answer is not made again
    assert platform.checkout.place_order(order(("MUG", 1)), idempotency_key="k",
                                         answer=_answer(seen)) == placed
    assert len(seen) == 1


def test_a_failed_checkout_makes_no_answer(platform: Platform) -> None:
    seed(platform)
    seen: list[tuple[Order, Payment]] = []
    with pytest.raises(PaymentDeclined):
        platform.checkout.place_order(order(("MUG", 1), token="tok_declined"),
                                      idempotency_key="k", answer=_answer(seen))
    assert seen == []
    record = platform.orders.idempotency_record("alice", "k")
    assert record is not None and record.response_status is None  # the host stores its own


@pytest.mark.parametrize("bad", ["raises", "wrong-types"])
def test_an_answer_that_fails_is_not_stored_and_the_order_is_confirmed(
    platform: Platform, bad: str, caplog: pytest.LogCaptureFixture
) -> None:
    seed(platform)

    def answer(placed: Order, payment: Payment) -> tuple[int, str]:
        if bad == "raises":
            raise RuntimeError("the host's renderer broke")
        return "201", b"{}"  # type: ignore[return-value]

    with caplog.at_level(logging.ERROR, logger="commerce_core.checkout"):
        placed = platform.checkout.place_order(order(("MUG", 1)), idempotency_key="k",
                                               answer=answer)
    assert placed.status is OrderStatus.CONFIRMED
    record = platform.orders.idempotency_record("alice", "k")
    assert record is not None and record.response_status is None
    assert "answer could not be made" in caplog.text


def test_a_confirming_write_run_again_stores_the_answer_once() -> None:
    """The confirming transaction fails (a deadlock) and runs again: the answer is made
    again for it, and what is stored is the one of the transaction that committed."""
    orders = FlakyStore(InMemoryOrderStore())
    platform = Platform.from_adapters(
        order_store=orders, inventory_store=InMemoryInventoryStore(),
        payment_gateway=SandboxPaymentGateway(), retry=RetryPolicy.immediate(),
        store_retry=RetryPolicy.immediate(4))
    seed(platform)
    seen: list[tuple[Order, Payment]] = []

    def answer(placed: Order, payment: Payment) -> tuple[int, str]:
        seen.append((placed, payment))
        if len(seen) == 1:
            orders.failures_left = 1  # this transaction's commit fails
        return 201, f"answer {len(seen)}"

    placed = platform.checkout.place_order(order(("MUG", 1)), idempotency_key="k",
                                           answer=answer)
    assert placed.status is OrderStatus.CONFIRMED and orders.failed == 1
    assert len(seen) == 2
    record = platform.orders.idempotency_record("alice", "k")
    assert record is not None and record.response_body == "answer 2"


def test_an_answer_for_another_order_is_never_stored(platform: Platform) -> None:
    """Only the confirming write of the order placed under the key stores its answer: a
    host hook that places another order inside (``on_step``) stores nothing of it there."""
    seed(platform)
    seen: list[tuple[Order, Payment]] = []
    inner: list[Order] = []
    busy: list[bool] = []

    def on_step(step: str, placed: Order) -> None:
        if step == "stock_reserved" and not busy:
            busy.append(True)
            inner.append(platform.checkout.place_order(order(("TEA", 1)),
                                                       idempotency_key="inner"))

    platform.checkout.on_step = on_step
    outer = platform.checkout.place_order(order(("MUG", 1)), idempotency_key="outer",
                                          answer=_answer(seen))
    assert [o.id for o, _ in seen] == [outer.id]
    inner_record = platform.orders.idempotency_record("alice", "inner")
    assert inner_record is not None and inner_record.response_status is None
    assert inner[0].status is OrderStatus.CONFIRMED


def test_a_key_in_use_is_not_answered(platform: Platform) -> None:
    seed(platform)
    seen: list[tuple[Order, Payment]] = []

    def on_step(step: str, placed: Order) -> None:
        if step == "stock_reserved":
            with pytest.raises(IdempotencyKeyInUse):
                platform.checkout.place_order(order(("MUG", 1)), idempotency_key="k",
                                              answer=_answer(seen))

    platform.checkout.on_step = on_step
    placed = platform.checkout.place_order(order(("MUG", 1)), idempotency_key="k",
                                           answer=_answer(seen))
    assert [o.id for o, _ in seen] == [placed.id]


def test_the_in_memory_and_sql_records_agree(platform: Platform) -> None:
    """(On every backend of the ``platform`` fixture.)"""
    seed(platform)
    placed = platform.checkout.place_order(order(("POT", 2)), idempotency_key="k",
                                           answer=lambda o, p: (201, "é ✓ " + o.id))
    record = platform.orders.idempotency_record("alice", "k")
    assert record is not None and record.response_body == "é ✓ " + placed.id

"""The checkout saga on every backend: happy path, every failure path, idempotency, and the
admin commands that follow (ship, deliver, cancel, refund)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from commerce_core import (
    Address,
    CurrencyMismatch,
    IdempotencyKeyReused,
    InsufficientStock,
    InvalidInput,
    InvalidTransition,
    Money,
    NotFound,
    OrderItem,
    OrderStatus,
    PaymentDeclined,
    PaymentStatus,
    PaymentUnavailable,
    PlaceOrder,
    Platform,
    RecoveryReport,
    RefundExceedsCaptured,
    RetryPolicy,
)
from commerce_core.checkout import CheckoutFailed
from commerce_core.inventory import LineRequest
from commerce_core.orders import SagaStep
from commerce_core.payments import GatewayAuthorization
from commerce_core.testing import (
    InMemoryInventoryStore,
    InMemoryOrderStore,
    ManualClock,
    SandboxPaymentGateway,
    check_invariants,
)
from tests.conftest import ADDRESS, order, seed
from tests.helpers import platform_on


def available(platform: Platform, sku: str) -> int:
    return platform.inventory.availability([sku])[sku]


def settled(platform: Platform, gateway: SandboxPaymentGateway) -> None:
    check_invariants(platform.order_store, platform.inventory_store, gateway)


def test_a_good_order_is_confirmed_with_stock_reserved_and_payment_authorized(
    platform: Platform, gateway: SandboxPaymentGateway
) -> None:
    seed(platform)
    placed = platform.checkout.place_order(order(("MUG", 2), ("POT", 1)), idempotency_key="k1")
    assert placed.status is OrderStatus.CONFIRMED
    assert placed.total == Money(2 * 1250 + 3900, "EUR")
    assert [h.status for h in placed.history] == ["pending", "confirmed"]
    assert available(platform, "MUG") == 8 and available(platform, "POT") == 2
    payment = platform.orders.payment(placed)
    assert payment is not None and payment.status is PaymentStatus.AUTHORIZED
    assert payment.authorized == placed.total
    assert [a.reference for a in gateway.authorizations()] == [placed.id]
    assert platform.orders.get(placed.id) == placed
    settled(platform, gateway)


def test_prices_are_snapshotted_when_the_order_is_placed(platform: Platform) -> None:
    seed(platform)
    placed = platform.checkout.place_order(order(("MUG", 1)), idempotency_key="k1")
    platform.inventory.upsert_product("MUG", name="Mug", price=Money(9999, "EUR"))
    assert platform.orders.get(placed.id).lines[0].unit_price == Money(1250, "EUR")


def test_a_line_larger_than_any_warehouse_is_split_across_warehouses(platform: Platform) -> None:
    seed(platform, {"MUG": 3})
    platform.inventory.adjust_stock("MUG", "AMS", delta=4, reason="receipt")
    platform.checkout.place_order(order(("MUG", 6)), idempotency_key="k1")
    levels = {lv.warehouse: lv.reserved for lv in platform.inventory.stock("MUG").levels}
    assert levels == {"AMS": 4, "BER": 2}


def test_out_of_stock_fails_the_order_names_every_short_line_and_reserves_nothing(
    platform: Platform, gateway: SandboxPaymentGateway
) -> None:
    seed(platform, {"MUG": 1, "POT": 3, "TEA": 1})
    with pytest.raises(InsufficientStock) as caught:
        platform.checkout.place_order(order(("MUG", 2), ("POT", 1), ("TEA", 5)),
                                      idempotency_key="k1")
    assert [(s.sku, s.requested, s.available) for s in caught.value.shortages] == [
        ("MUG", 2, 1), ("TEA", 5, 1)]
    failed = platform.orders.get(str(caught.value.order_id))
    assert failed.status is OrderStatus.FAILED
    assert failed.failure_reason == "insufficient-stock"
    assert available(platform, "POT") == 3  # all lines or none
    assert gateway.authorizations() == []
    settled(platform, gateway)


@pytest.mark.parametrize("token", ["tok_declined", "tok_insufficient_funds", "tok_unknown"])
def test_a_declined_payment_fails_the_order_and_releases_the_stock(
    platform: Platform, gateway: SandboxPaymentGateway, token: str
) -> None:
    seed(platform)
    with pytest.raises(PaymentDeclined) as caught:
        platform.checkout.place_order(order(("MUG", 2), token=token), idempotency_key="k1")
    failed = platform.orders.get(str(caught.value.order_id))
    assert (failed.status, failed.failure_reason) == (OrderStatus.FAILED, "payment-declined")
    assert available(platform, "MUG") == 10
    payment = platform.orders.payment(failed)
    assert payment is not None and payment.status is PaymentStatus.DECLINED
    settled(platform, gateway)


def test_a_provider_that_stays_down_fails_the_order_after_retries(
    platform: Platform, gateway: SandboxPaymentGateway
) -> None:
    seed(platform)
    with pytest.raises(PaymentUnavailable) as caught:
        platform.checkout.place_order(order(("MUG", 2), token="tok_timeout"),
                                      idempotency_key="k1")
    failed = platform.orders.get(str(caught.value.order_id))
    assert (failed.status, failed.failure_reason) == (OrderStatus.FAILED, "payment-unavailable")
    assert available(platform, "MUG") == 10
    settled(platform, gateway)


def test_a_flaky_provider_is_retried_until_it_approves(
    platform: Platform, gateway: SandboxPaymentGateway
) -> None:
    seed(platform)
    placed = platform.checkout.place_order(order(("MUG", 1), token="tok_flaky"),
                                           idempotency_key="k1")
    assert placed.status is OrderStatus.CONFIRMED
    assert len(gateway.authorizations()) == 1


def test_flaky_fails_when_the_policy_allows_too_few_attempts(
    gateway: SandboxPaymentGateway,
) -> None:
    platform = Platform.from_adapters(
        order_store=InMemoryOrderStore(), inventory_store=InMemoryInventoryStore(),
        payment_gateway=gateway, retry=RetryPolicy.immediate(attempts=2),
    )
    seed(platform)
    with pytest.raises(PaymentUnavailable):
        platform.checkout.place_order(order(("MUG", 1), token="tok_flaky"), idempotency_key="k")


def test_the_same_key_and_command_returns_the_same_order_once(
    platform: Platform, gateway: SandboxPaymentGateway
) -> None:
    seed(platform)
    first = platform.checkout.place_order(order(("MUG", 2)), idempotency_key="k1")
    again = platform.checkout.place_order(order(("MUG", 2)), idempotency_key="k1")
    assert again == first
    assert available(platform, "MUG") == 8
    assert len(gateway.authorizations()) == 1
    assert len(platform.orders.list().items) == 1


def test_the_same_key_replays_a_failure_without_trying_again(
    platform: Platform, gateway: SandboxPaymentGateway
) -> None:
    seed(platform)
    with pytest.raises(PaymentDeclined) as first:
        platform.checkout.place_order(order(("MUG", 1), token="tok_declined"),
                                      idempotency_key="k1")
    with pytest.raises(PaymentDeclined) as again:
        platform.checkout.place_order(order(("MUG", 1), token="tok_declined"),
                                      idempotency_key="k1")
    assert again.value.order_id == first.value.order_id
    assert len(platform.orders.list().items) == 1


def test_the_same_key_with_another_command_is_refused_and_changes_nothing(
    platform: Platform,
) -> None:
    seed(platform)
    platform.checkout.place_order(order(("MUG", 2)), idempotency_key="k1")
    with pytest.raises(IdempotencyKeyReused):
        platform.checkout.place_order(order(("MUG", 3)), idempotency_key="k1")
    assert available(platform, "MUG") == 8
    assert len(platform.orders.list().items) == 1


def test_keys_are_scoped_per_customer(platform: Platform) -> None:
    seed(platform)
    a = platform.checkout.place_order(order(("MUG", 1), customer="alice"), idempotency_key="k")
    b = platform.checkout.place_order(order(("MUG", 1), customer="bob"), idempotency_key="k")
    assert a.id != b.id and available(platform, "MUG") == 8


@pytest.mark.parametrize(
    ("lines", "path"),
    [
        ((("MUG", 0),), "lines[0].quantity"),
        ((("MUG", -1),), "lines[0].quantity"),
        ((("MUG", 1001),), "lines[0].quantity"),
        ((("NOPE", 1),), "lines[0].sku"),
        ((("MUG", 1), ("MUG", 1)), "lines[1].sku"),
        ((("bad sku!", 1),), "lines[0].sku"),
        ((), "lines"),
    ],
)
def test_bad_lines_raise_a_typed_error_with_the_path_and_change_nothing(
    platform: Platform, lines: tuple[tuple[str, int], ...], path: str
) -> None:
    seed(platform)
    with pytest.raises(InvalidInput) as caught:
        platform.checkout.place_order(order(*lines), idempotency_key="k1")
    assert path in [e.path for e in caught.value.errors]
    assert platform.orders.list().items == []
    assert available(platform, "MUG") == 10


def test_every_validation_error_is_reported_at_once(platform: Platform) -> None:
    seed(platform)
    bad = PlaceOrder(customer_id="alice", lines=[OrderItem("MUG", 0), OrderItem("POT", 5000)],
                     payment_token="", shipping_address=Address("", "x", "y", "z", "Germany"))
    with pytest.raises(InvalidInput) as caught:
        platform.checkout.place_order(bad, idempotency_key="k1")
    assert {e.path for e in caught.value.errors} == {
        "lines[0].quantity", "lines[1].quantity", "payment.token", "shipping_address.name",
        "shipping_address.country"}


def test_an_inactive_product_cannot_be_ordered(platform: Platform) -> None:
    seed(platform)
    platform.inventory.upsert_product("MUG", name="Mug", price=Money(1250, "EUR"), active=False)
    with pytest.raises(InvalidInput, match="not for sale"):
        platform.checkout.place_order(order(("MUG", 1)), idempotency_key="k1")


def test_mixed_currencies_are_refused(platform: Platform) -> None:
    seed(platform)
    platform.inventory.upsert_product("TEA", name="Tea", price=Money(800, "USD"))
    with pytest.raises(CurrencyMismatch) as caught:
        platform.checkout.place_order(order(("MUG", 1), ("TEA", 1)), idempotency_key="k1")
    assert caught.value.errors[0].path == "lines[1].sku"
    assert platform.orders.list().items == []


@pytest.mark.parametrize("key", ["", "x" * 256, "tab\there", "ümlaut"])
def test_a_bad_idempotency_key_is_refused(platform: Platform, key: str) -> None:
    seed(platform)
    with pytest.raises(InvalidInput):
        platform.checkout.place_order(order(("MUG", 1)), idempotency_key=key)


def test_ship_captures_commits_stock_and_records_the_shipment(
    platform: Platform, gateway: SandboxPaymentGateway
) -> None:
    seed(platform)
    placed = platform.checkout.place_order(order(("MUG", 2)), idempotency_key="k1")
    shipped = platform.checkout.ship(placed.id, carrier="DHL", tracking_number="JD014600")
    assert shipped.status is OrderStatus.SHIPPED
    assert shipped.shipment is not None and shipped.shipment.carrier == "DHL"
    stock = platform.inventory.stock("MUG")
    assert (stock.on_hand, stock.reserved) == (8, 0)
    assert [m.delta for m in platform.inventory.movements("MUG")] == [-2, 10]
    payment = platform.orders.payment(shipped)
    assert payment is not None and payment.captured == placed.total
    delivered = platform.checkout.deliver(placed.id)
    assert [h.status for h in delivered.history] == [
        "pending", "confirmed", "shipped", "delivered"]
    settled(platform, gateway)


def test_cancel_releases_the_stock_and_voids_the_payment(
    platform: Platform, gateway: SandboxPaymentGateway
) -> None:
    seed(platform)
    placed = platform.checkout.place_order(order(("MUG", 2)), idempotency_key="k1")
    cancelled = platform.checkout.cancel(placed.id, customer_id="alice")
    assert cancelled.status is OrderStatus.CANCELLED and cancelled.finished
    assert available(platform, "MUG") == 10
    assert [a.status for a in gateway.authorizations()] == ["voided"]
    with pytest.raises(InvalidTransition):
        platform.checkout.cancel(placed.id)
    settled(platform, gateway)


def test_a_customer_cannot_cancel_another_customers_order(platform: Platform) -> None:
    seed(platform)
    placed = platform.checkout.place_order(order(("MUG", 2)), idempotency_key="k1")
    with pytest.raises(NotFound):
        platform.checkout.cancel(placed.id, customer_id="mallory")
    with pytest.raises(NotFound):
        platform.orders.get(placed.id, customer_id="mallory")
    assert platform.orders.get(placed.id).status is OrderStatus.CONFIRMED


def test_invalid_transitions_are_refused_and_change_nothing(platform: Platform) -> None:
    seed(platform)
    placed = platform.checkout.place_order(order(("MUG", 2)), idempotency_key="k1")
    with pytest.raises(InvalidTransition):
        platform.checkout.deliver(placed.id)
    with pytest.raises(InvalidTransition):
        platform.checkout.refund(placed.id, reason="not captured yet")
    platform.checkout.ship(placed.id, carrier="DHL", tracking_number="1")
    with pytest.raises(InvalidTransition):
        platform.checkout.cancel(placed.id)
    with pytest.raises(InvalidTransition):
        platform.checkout.ship(placed.id, carrier="DHL", tracking_number="2")
    assert platform.orders.get(placed.id).status is OrderStatus.SHIPPED


def test_partial_refunds_add_up_and_a_full_refund_ends_the_order(
    platform: Platform, gateway: SandboxPaymentGateway
) -> None:
    seed(platform)
    placed = platform.checkout.place_order(order(("POT", 1)), idempotency_key="k1")  # 39.00
    platform.checkout.ship(placed.id, carrier="UPS", tracking_number="1Z")
    after_one = platform.checkout.refund(placed.id, amount=Money(1000, "EUR"), reason="dent")
    assert after_one.status is OrderStatus.SHIPPED
    with pytest.raises(RefundExceedsCaptured):
        platform.checkout.refund(placed.id, amount=Money(2901, "EUR"), reason="too much")
    with pytest.raises(CurrencyMismatch):
        platform.checkout.refund(placed.id, amount=Money(100, "USD"), reason="wrong money")
    platform.checkout.refund(placed.id, amount=Money(900, "EUR"), reason="late")
    done = platform.checkout.refund(placed.id, reason="the rest")
    assert done.status is OrderStatus.REFUNDED
    payment = platform.orders.payment(done)
    assert payment is not None and payment.refunded == payment.captured == Money(3900, "EUR")
    assert payment.refund_count == 3
    (auth,) = gateway.authorizations()
    assert auth.refunded == 3900
    settled(platform, gateway)


def test_orders_list_newest_first_a_page_at_a_time(platform: Platform) -> None:
    seed(platform)
    ids = [platform.checkout.place_order(order(("TEA", 1)), idempotency_key=f"k{i}").id
           for i in range(5)]
    first = platform.orders.list(limit=2)
    second = platform.orders.list(limit=2, cursor=first.next_cursor)
    third = platform.orders.list(limit=2, cursor=second.next_cursor)
    seen = [o.id for o in (*first.items, *second.items, *third.items)]
    assert sorted(seen, reverse=True) == seen and set(seen) == set(ids)
    assert third.next_cursor is None
    assert platform.orders.list(customer_id="bob").items == []
    assert len(platform.orders.list(status=OrderStatus.CONFIRMED).items) == 5


def test_an_expired_reservation_is_released_and_its_order_cannot_confirm_on_it(
    platform: Platform, clock: ManualClock
) -> None:
    seed(platform)
    res = platform.inventory.reserve("r-1", reference="manual", ttl=timedelta(minutes=1),
                                     lines=[LineRequest("MUG", 4)])
    assert available(platform, "MUG") == 6
    clock.advance(timedelta(minutes=2))
    assert platform.inventory.expire_reservations() == 1
    assert available(platform, "MUG") == 10
    assert platform.inventory.get_reservation(res.id).status == "expired"
    assert platform.inventory.expire_reservations() == 0


def test_a_confirmed_orders_reservation_never_expires(
    platform: Platform, clock: ManualClock
) -> None:
    seed(platform)
    placed = platform.checkout.place_order(order(("MUG", 2)), idempotency_key="k1")
    clock.advance(timedelta(days=30))
    assert platform.inventory.expire_reservations() == 0
    assert platform.checkout.ship(placed.id, carrier="DHL", tracking_number="1").status == (
        OrderStatus.SHIPPED)


def test_unfinished_saga_state_is_visible_on_the_order(platform: Platform) -> None:
    seed(platform)
    placed = platform.checkout.place_order(order(("MUG", 1)), idempotency_key="k1")
    assert placed.saga_step is SagaStep.DONE and placed.finished


def test_a_lapsed_authorization_cancels_the_order_cleanly_at_shipping(
    platform: Platform, gateway: SandboxPaymentGateway
) -> None:
    """Nothing can be captured any more: the order is cancelled with its reason, its stock
    goes back, and the lapsed hold is voided; nothing ships unpaid."""
    seed(platform)
    placed = platform.checkout.place_order(order(("MUG", 2)), idempotency_key="k1")
    (auth,) = gateway.authorizations()
    gateway.expire_authorization(auth.id)
    with pytest.raises(PaymentDeclined) as caught:
        platform.checkout.ship(placed.id, carrier="DHL", tracking_number="1")
    assert (caught.value.order_id, caught.value.decline_code) == (
        placed.id, "authorization_expired")
    kept = platform.orders.get(placed.id)
    assert (kept.status, kept.shipment, kept.finished) == (OrderStatus.CANCELLED, None, True)
    assert kept.failure_reason == "authorization-expired"
    assert platform.inventory.stock("MUG").reserved == 0
    assert available(platform, "MUG") == 10
    payment = platform.orders.payment(kept)
    assert payment is not None and payment.status is PaymentStatus.VOIDED
    # the client's retry of its checkout still gets the order, not an error
    assert platform.checkout.place_order(order(("MUG", 2)), idempotency_key="k1").id \
        == placed.id
    settled(platform, gateway)


@pytest.mark.parametrize(
    ("build", "path"),
    [
        # deliberately mistyped, as from a caller without a type checker
        (lambda: PlaceOrder(customer_id="alice", lines=None,
                            payment_token="tok_visa",
                            shipping_address=ADDRESS), "lines"),
        (lambda: PlaceOrder(customer_id="alice", lines=[{"sku": "MUG", "quantity": 1}],
                            payment_token="tok_visa", shipping_address=ADDRESS), "lines[0]"),
        (lambda: PlaceOrder(customer_id="alice", lines=[OrderItem("MUG", "2")],  # type: ignore[arg-type]
                            payment_token="tok_visa", shipping_address=ADDRESS),
         "lines[0].quantity"),
        (lambda: PlaceOrder(customer_id="alice", lines=[OrderItem("MUG", 1)],
                            payment_token="tok_visa",
                            shipping_address={"city": "Berlin"}),  # type: ignore[arg-type]
         "shipping_address"),
        (lambda: PlaceOrder(customer_id="al\x00ice", lines=[OrderItem("MUG", 1)],
                            payment_token="tok_visa", shipping_address=ADDRESS), "customer_id"),
    ],
)
def test_wrongly_typed_commands_raise_typed_errors_not_crashes(
    platform: Platform, build: Callable[[], PlaceOrder], path: str
) -> None:
    seed(platform)
    with pytest.raises(InvalidInput) as caught:
        platform.checkout.place_order(build(), idempotency_key="k1")
    assert path in [e.path for e in caught.value.errors]
    assert platform.orders.list().items == []


def test_a_provider_whose_lookup_lags_is_not_believed_too_soon(
    platform: Platform, gateway: SandboxPaymentGateway, clock: ManualClock
) -> None:
    """After an authorization whose outcome is unknown, "no hold found" is only believed once
    the gateway's ``lookup_delay`` has passed (Stripe's search lags by up to a minute);
    until then the stock is released but the order waits, resumable."""
    seed(platform)
    gateway.lookup_delay = timedelta(seconds=60)  # type: ignore[attr-defined]
    gateway.outage = {"authorize"}
    with pytest.raises(PaymentUnavailable) as caught:
        platform.checkout.place_order(order(("MUG", 2)), idempotency_key="k1")
    gateway.outage = set()
    waiting = platform.orders.get(str(caught.value.order_id))
    assert (waiting.status, waiting.saga_step) == (OrderStatus.PENDING, SagaStep.COMPENSATING)
    assert platform.inventory.stock("MUG").reserved == 0  # the stock did not wait
    assert platform.checkout.recover(grace=timedelta(0)).unfinished == (waiting.id,)
    clock.advance(timedelta(seconds=61))
    assert platform.checkout.recover(grace=timedelta(0)).finished == (waiting.id,)
    assert platform.orders.get(waiting.id).status is OrderStatus.FAILED
    settled(platform, gateway)


def test_scan_reads_every_order_page_by_page(platform: Platform) -> None:
    seed(platform, {"MUG": 10, "POT": 3, "TEA": 50})
    placed = [platform.checkout.place_order(order(("TEA", 1), customer=f"c{n % 2}"),
                                            idempotency_key=f"k{n}").id for n in range(7)]
    platform.checkout.cancel(placed[0])
    newest_first = sorted(placed, reverse=True)  # ids sort by creation time
    assert [o.id for o in platform.orders.scan(page_size=2)] == newest_first
    assert len(list(platform.orders.scan(status=OrderStatus.CONFIRMED, page_size=3))) == 6
    assert [o.id for o in platform.orders.scan(customer_id="c1")] == sorted(
        placed[1::2], reverse=True)


def test_a_repeated_cancel_resumes_the_void_the_provider_outage_cut_short(
    platform: Platform, gateway: SandboxPaymentGateway
) -> None:
    seed(platform)
    placed = platform.checkout.place_order(order(("MUG", 2)), idempotency_key="k1")
    gateway.outage.add("void")
    with pytest.raises(PaymentUnavailable):
        platform.checkout.cancel(placed.id)
    waiting = platform.orders.get(placed.id)
    assert (waiting.status, waiting.saga_step) == (OrderStatus.CANCELLED, SagaStep.COMPENSATING)
    assert available(platform, "MUG") == 10  # the stock did not wait for the provider
    gateway.outage.clear()
    done = platform.checkout.cancel(placed.id)
    assert (done.status, done.finished) == (OrderStatus.CANCELLED, True)
    assert [a.status for a in gateway.authorizations()] == ["voided"]
    with pytest.raises(InvalidTransition):  # finished: a cancel is a cancel once
        platform.checkout.cancel(placed.id)
    settled(platform, gateway)


@pytest.mark.parametrize("fault", ["outage", "lose_responses"])
def test_a_checkout_failed_only_by_an_unavailable_provider_is_tried_again_under_its_key(
    platform: Platform, gateway: SandboxPaymentGateway, fault: str
) -> None:
    """Nothing was held or charged (the provider never answered, or its hold was found
    and voided): the client's retry under the same key is a new attempt, not the 503
    again forever."""
    seed(platform)
    getattr(gateway, fault).add("authorize")
    with pytest.raises(PaymentUnavailable) as first:
        platform.checkout.place_order(order(("MUG", 2)), idempotency_key="k1")
    getattr(gateway, fault).clear()
    failed = platform.orders.get(str(first.value.order_id))
    assert (failed.status, failed.finished) == (OrderStatus.FAILED, True)
    retried = platform.checkout.place_order(order(("MUG", 2)), idempotency_key="k1")
    assert retried.status is OrderStatus.CONFIRMED and retried.id != failed.id
    again = platform.checkout.place_order(order(("MUG", 2)), idempotency_key="k1")
    assert again.id == retried.id  # from now on the key replays the confirmed order
    with pytest.raises(IdempotencyKeyReused):
        platform.checkout.place_order(order(("MUG", 3)), idempotency_key="k1")
    assert available(platform, "MUG") == 8
    assert [a.status for a in gateway.authorizations()] == (
        ["authorized"] if fault == "outage" else ["voided", "authorized"])
    settled(platform, gateway)


def test_a_declined_checkout_is_not_tried_again_under_its_key(
    platform: Platform, gateway: SandboxPaymentGateway
) -> None:
    seed(platform)
    with pytest.raises(PaymentDeclined):
        platform.checkout.place_order(order(("MUG", 1), token="tok_declined"),
                                      idempotency_key="k1")
    with pytest.raises(PaymentDeclined):
        platform.checkout.place_order(order(("MUG", 1), token="tok_declined"),
                                      idempotency_key="k1")
    assert len(platform.orders.list().items) == 1
    assert len(gateway.authorizations()) == 0


def test_a_live_checkout_that_recovery_finished_meanwhile_answers_with_its_order(
    platform: Platform, gateway: SandboxPaymentGateway
) -> None:
    """Another host's start-up sweep (grace 0) drove this checkout to its end while it
    waited on the provider; its own last write then loses the version race, and the
    customer still gets the order, not a 409 that makes them order again."""
    seed(platform)
    sweeps: list[RecoveryReport] = []
    started = threading.Event()

    def another_host_recovers(step: str, _: object) -> None:
        if step == "payment_authorized" and not started.is_set():
            started.set()
            sweeps.append(platform.checkout.recover(grace=timedelta(0)))

    platform.checkout.on_step = another_host_recovers
    placed = platform.checkout.place_order(order(("MUG", 2)), idempotency_key="k1")
    assert placed.status is OrderStatus.CONFIRMED
    assert [r.finished for r in sweeps] == [(placed.id,)]
    assert len(gateway.authorizations()) == 1
    assert platform.orders.get(placed.id).version == placed.version
    settled(platform, gateway)


class _SweepDuringAuthorize(SandboxPaymentGateway):
    """A provider whose first authorization is slow: while it is on its way, ``meanwhile``
    runs (another process's expiry and recovery sweeps)."""

    def __init__(self) -> None:
        super().__init__()
        self.meanwhile: Callable[[], object] | None = None

    def authorize(self, *, token: str, amount: Money, idempotency_key: str,
                  reference: str) -> GatewayAuthorization:
        meanwhile, self.meanwhile = self.meanwhile, None
        if meanwhile is not None:
            meanwhile()
        return super().authorize(token=token, amount=amount, idempotency_key=idempotency_key,
                                 reference=reference)


def test_a_hold_made_after_a_sweep_failed_its_order_is_voided_by_the_checkout(
    backend: str, tmp_path: Path, clock: ManualClock
) -> None:
    """A sweep with no grace failed the order (its reservation had expired, and no hold was
    there yet); the slow authorization then made one. The checkout that made it loses the
    race for the order's last write, answers with the failure, and gives the hold back."""
    gateway = _SweepDuringAuthorize()
    with platform_on(backend, tmp_path, clock, gateway,
                     reservation_ttl=timedelta(seconds=30)) as platform:
        seed(platform)

        def sweeps() -> None:
            clock.advance(timedelta(seconds=31))
            platform.inventory.expire_reservations()
            assert platform.checkout.recover(grace=timedelta(0)).finished != ()

        gateway.meanwhile = sweeps
        with pytest.raises(CheckoutFailed) as failed:
            platform.checkout.place_order(order(("MUG", 1)), idempotency_key="k1")
        assert failed.value.code == "reservation-expired"
        assert [a.status for a in gateway.authorizations()] == ["voided"]
        settled(platform, gateway)

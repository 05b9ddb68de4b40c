"""Provider events applied to orders: once each, converging with the saga."""

from __future__ import annotations

from datetime import timedelta

import attrs
import pytest

from commerce_core import (
    InvalidInput,
    InvalidNotification,
    Money,
    OrderStatus,
    PaymentUnavailable,
    Platform,
)
from commerce_core.checkout import NotificationOutcome, recovery
from commerce_core.orders import SagaStep
from commerce_core.payments import NotificationKind, PaymentNotification, PaymentStatus
from commerce_core.testing import ManualClock, SandboxPaymentGateway
from tests.conftest import order, seed
from tests.unit.test_checkout import settled


def _event(kind: NotificationKind, reference: str, event_id: str = "evt_1",
           authorization: str = "auth_1", amount: int = 1250) -> PaymentNotification:
    return PaymentNotification(provider="sandbox", event_id=event_id, kind=kind,
                               authorization_id=authorization, reference=reference,
                               amount=Money(amount, "EUR"))


def _about(platform: Platform, order_id: str, kind: NotificationKind,
           event_id: str = "evt_1") -> PaymentNotification:
    """An event about the order's own payment, as its provider would send it."""
    payment = platform.orders.payment(platform.orders.get(order_id))
    assert payment is not None and payment.authorization_id is not None
    return _event(kind, order_id, event_id, payment.authorization_id, payment.amount.amount)


def test_a_lapsed_hold_cancels_the_confirmed_order_once(
    platform: Platform, gateway: SandboxPaymentGateway
) -> None:
    seed(platform)
    placed = platform.checkout.place_order(order(("MUG", 2)), idempotency_key="k1")
    (auth,) = gateway.authorizations()
    gateway.expire_authorization(auth.id)
    event = _event(NotificationKind.EXPIRED, placed.id, authorization=auth.id, amount=2500)
    assert platform.checkout.apply_notification(event) is NotificationOutcome.CANCELLED
    assert platform.checkout.apply_notification(event) is NotificationOutcome.DUPLICATE
    cancelled = platform.orders.get(placed.id)
    assert (cancelled.status, cancelled.failure_reason) == (
        OrderStatus.CANCELLED, "authorization-expired")
    assert platform.inventory.stock("MUG").reserved == 0
    payment = platform.orders.payment(cancelled)
    assert payment is not None and payment.status is PaymentStatus.VOIDED
    settled(platform, gateway)


def test_events_the_order_accounts_for_change_nothing(platform: Platform) -> None:
    seed(platform)
    placed = platform.checkout.place_order(order(("MUG", 1)), idempotency_key="k1")
    before = platform.orders.get(placed.id)
    for n, kind in enumerate([NotificationKind.AUTHORIZED, NotificationKind.CAPTURED,
                              NotificationKind.EXPIRED]):
        if kind is NotificationKind.EXPIRED:
            platform.checkout.cancel(placed.id)  # an expiry after a cancel: nothing to do
            before = platform.orders.get(placed.id)
        outcome = platform.checkout.apply_notification(
            _about(platform, placed.id, kind, f"evt_{n}"))
        assert outcome is NotificationOutcome.NOTED
        assert platform.orders.get(placed.id) == before


def test_an_event_about_a_stalled_saga_drives_it_to_its_end(
    platform: Platform, clock: ManualClock
) -> None:
    """A crash left the order between two steps; the provider's event finishes it now
    instead of at the next recovery sweep."""
    seed(platform)
    crash_at = "payment_authorized"

    def crash(step: str, _: object) -> None:
        if step == crash_at:
            raise KeyboardInterrupt  # the process dies right after the provider's answer

    platform.checkout.on_step = crash
    with pytest.raises(KeyboardInterrupt):
        platform.checkout.place_order(order(("MUG", 1)), idempotency_key="k1")
    platform.checkout.on_step = None
    (stalled,) = platform.orders.list(limit=10).items
    assert stalled.saga_step is SagaStep.STARTED  # nothing is written between the steps
    event = _event(NotificationKind.AUTHORIZED, stalled.id)
    assert platform.checkout.apply_notification(event) is NotificationOutcome.NOTED  # too soon
    clock.advance(timedelta(seconds=30))
    later = _event(NotificationKind.AUTHORIZED, stalled.id, "evt_2")
    assert platform.checkout.apply_notification(later) is NotificationOutcome.ADVANCED
    assert platform.orders.get(stalled.id).status is OrderStatus.CONFIRMED


def test_an_event_about_someone_else_s_payment_is_recorded_and_ignored(
    platform: Platform,
) -> None:
    event = _event(NotificationKind.CAPTURED, "ord_not_ours")
    assert platform.checkout.apply_notification(event) is NotificationOutcome.UNKNOWN_ORDER
    assert platform.checkout.apply_notification(event) is NotificationOutcome.DUPLICATE


def test_a_malformed_event_is_refused(platform: Platform) -> None:
    with pytest.raises(InvalidInput):
        platform.checkout.apply_notification(_event(NotificationKind.CAPTURED, ""))


def test_a_crash_after_acting_and_before_recording_acts_again_harmlessly(
    platform: Platform, gateway: SandboxPaymentGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The provider resends an event we did not acknowledge; acting again is a no-op."""
    seed(platform)
    placed = platform.checkout.place_order(order(("MUG", 2)), idempotency_key="k1")
    (auth,) = gateway.authorizations()
    gateway.expire_authorization(auth.id)
    event = _event(NotificationKind.EXPIRED, placed.id, authorization=auth.id, amount=2500)

    def crash(*_: object, **__: object) -> None:
        raise KeyboardInterrupt

    with monkeypatch.context() as patched:
        patched.setattr(recovery, "_record", crash)
        with pytest.raises(KeyboardInterrupt):
            platform.checkout.apply_notification(event)
    assert platform.orders.get(placed.id).status is OrderStatus.CANCELLED
    assert platform.checkout.apply_notification(event) is NotificationOutcome.NOTED
    assert platform.checkout.apply_notification(event) is NotificationOutcome.DUPLICATE
    settled(platform, gateway)


@pytest.mark.parametrize("forged", [
    {"authorization_id": "auth_someone_else"},
    {"amount": Money(1, "EUR")},
    {"amount": Money(1250, "USD")},
])
def test_an_event_naming_our_order_but_not_its_payment_is_recorded_and_ignored(
    platform: Platform, gateway: SandboxPaymentGateway, forged: dict[str, object]
) -> None:
    """Matched by its reference alone, a lapse of another hold would cancel this order."""
    seed(platform)
    placed = platform.checkout.place_order(order(("MUG", 1)), idempotency_key="k1")
    event = attrs.evolve(_about(platform, placed.id, NotificationKind.EXPIRED),
                         **forged)  # type: ignore[arg-type]
    assert platform.checkout.apply_notification(event) is NotificationOutcome.MISMATCHED
    assert platform.checkout.apply_notification(event) is NotificationOutcome.DUPLICATE
    assert platform.orders.get(placed.id) == placed
    settled(platform, gateway)


def test_an_event_before_the_payment_is_recorded_is_checked_by_its_amount(
    platform: Platform, clock: ManualClock
) -> None:
    seed(platform)

    def crash(step: str, _: object) -> None:
        if step == "payment_authorized":
            raise KeyboardInterrupt

    platform.checkout.on_step = crash
    with pytest.raises(KeyboardInterrupt):
        platform.checkout.place_order(order(("MUG", 2)), idempotency_key="k1")
    platform.checkout.on_step = None
    (stalled,) = platform.orders.list(limit=10).items
    clock.advance(timedelta(seconds=30))
    wrong = _event(NotificationKind.AUTHORIZED, stalled.id, "evt_1", "auth_x", amount=99)
    assert platform.checkout.apply_notification(wrong) is NotificationOutcome.MISMATCHED
    assert platform.orders.get(stalled.id).saga_step is SagaStep.STARTED
    right = _event(NotificationKind.AUTHORIZED, stalled.id, "evt_2", "auth_x", amount=2500)
    assert platform.checkout.apply_notification(right) is NotificationOutcome.ADVANCED


def test_a_refund_made_in_the_dashboard_is_learnt_from_its_event_once(
    platform: Platform, gateway: SandboxPaymentGateway
) -> None:
    seed(platform)
    placed = platform.checkout.place_order(order(("MUG", 2)), idempotency_key="k1")
    platform.checkout.ship(placed.id, carrier="DHL", tracking_number="T1")
    payment = platform.orders.payment(placed)
    assert payment is not None and payment.authorization_id is not None
    refund_id = gateway.refund_outside(payment.authorization_id, Money(600, "EUR"))
    event = PaymentNotification(  # a refund event names the payment, not the order
        provider="sandbox", event_id="evt_r1", kind=NotificationKind.REFUNDED,
        authorization_id=payment.authorization_id, amount=Money(600, "EUR"),
        refund_id=refund_id)
    assert platform.checkout.apply_notification(event) is NotificationOutcome.REFUNDED
    again = attrs.evolve(event, event_id="evt_r1_again")  # the same refund, another event
    assert platform.checkout.apply_notification(again) is NotificationOutcome.NOTED
    after = platform.orders.payment(placed)
    assert after is not None and after.refunded == Money(600, "EUR")
    assert after.refundable == Money(1900, "EUR")
    # and the rest can be refunded in full: the library's books agree with the provider's
    refunded = platform.checkout.refund(placed.id, reason="the rest")
    assert refunded.status is OrderStatus.REFUNDED
    settled(platform, gateway)


def test_the_event_of_a_refund_of_ours_changes_nothing(
    platform: Platform, gateway: SandboxPaymentGateway
) -> None:
    seed(platform)
    placed = platform.checkout.place_order(order(("MUG", 2)), idempotency_key="k1")
    platform.checkout.ship(placed.id, carrier="DHL", tracking_number="T1")
    platform.checkout.refund(placed.id, amount=Money(500, "EUR"), reason="dented")
    payment = platform.orders.payment(placed)
    assert payment is not None and payment.authorization_id is not None
    (refund,) = gateway.list_refunds(authorization_id=payment.authorization_id)
    event = PaymentNotification(
        provider="sandbox", event_id="evt_r", kind=NotificationKind.REFUNDED,
        authorization_id=payment.authorization_id, amount=refund.amount,
        refund_id=refund.id, refund_key=refund.idempotency_key)
    assert platform.checkout.apply_notification(event) is NotificationOutcome.NOTED
    assert platform.orders.payment(placed) == payment
    settled(platform, gateway)


def test_a_refund_event_for_an_order_mid_step_is_deferred_not_recorded(
    platform: Platform, gateway: SandboxPaymentGateway
) -> None:
    seed(platform)
    placed = platform.checkout.place_order(order(("MUG", 2)), idempotency_key="k1")
    gateway.lose_responses.add("capture")
    with pytest.raises(PaymentUnavailable):
        platform.checkout.ship(placed.id, carrier="DHL", tracking_number="T1")
    payment = platform.orders.payment(placed)
    assert payment is not None and payment.authorization_id is not None
    refund_id = gateway.refund_outside(payment.authorization_id, Money(100, "EUR"))
    event = PaymentNotification(
        provider="sandbox", event_id="evt_r", kind=NotificationKind.REFUNDED,
        authorization_id=payment.authorization_id, amount=Money(100, "EUR"),
        refund_id=refund_id)
    assert platform.checkout.apply_notification(event) is NotificationOutcome.DEFERRED
    gateway.lose_responses.clear()
    platform.checkout.ship(placed.id, carrier="DHL", tracking_number="T1")
    assert platform.checkout.apply_notification(event) is NotificationOutcome.REFUNDED
    settled(platform, gateway)


@pytest.mark.parametrize("bad", [
    {"amount": 2500}, {"kind": "expired"}, {"authorization_id": ""},
    {"reference": 7}, {"refund_id": ""},
])
def test_a_notification_of_the_wrong_shape_is_refused_and_changes_nothing(
    platform: Platform, bad: dict[str, object]
) -> None:
    seed(platform)
    placed = platform.checkout.place_order(order(("MUG", 1)), idempotency_key="k1")
    event = attrs.evolve(_about(platform, placed.id, NotificationKind.EXPIRED),
                         **bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidNotification):
        platform.checkout.apply_notification(event)
    assert platform.orders.get(placed.id) == placed


def test_a_hold_reported_for_an_order_that_failed_without_one_is_voided(
    platform: Platform, gateway: SandboxPaymentGateway
) -> None:
    """The authorization's answer came too late for every lookup (the order failed with no
    hold found); the provider's event about it is the last chance to give it back."""
    seed(platform)
    gateway.outage.add("authorize")
    with pytest.raises(PaymentUnavailable) as failed:
        platform.checkout.place_order(order(("MUG", 2)), idempotency_key="k1")
    gateway.outage.clear()
    order_id = str(failed.value.order_id)
    late = gateway.authorize(token="tok_visa", amount=Money(2500, "EUR"),
                             idempotency_key=f"{order_id}:authorize", reference=order_id)
    event = _event(NotificationKind.AUTHORIZED, order_id, "evt_late", late.id, 2500)
    assert platform.checkout.apply_notification(event) is NotificationOutcome.VOIDED
    assert [a.status for a in gateway.authorizations()] == ["voided"]
    assert platform.checkout.apply_notification(event) is NotificationOutcome.DUPLICATE
    settled(platform, gateway)


def test_a_lapse_reported_while_the_checkout_is_still_running_is_applied_later(
    platform: Platform, gateway: SandboxPaymentGateway
) -> None:
    """The hold lapsed between the authorization and the confirmation; the event is not
    consumed while the order is mid-step, and cancels the order once it is confirmed."""
    seed(platform)
    events: list[NotificationOutcome] = []

    def lapse_now(step: str, order: object) -> None:
        if step == "payment_authorized" and not events:
            (auth,) = gateway.authorizations()
            gateway.expire_authorization(auth.id)
            reference = getattr(order, "id")  # noqa: B009 - the hook gets an Order
            events.append(platform.checkout.apply_notification(
                _event(NotificationKind.EXPIRED, reference, "evt_lapse", auth.id, 2500)))

    platform.checkout.on_step = lapse_now
    placed = platform.checkout.place_order(order(("MUG", 2)), idempotency_key="k1")
    platform.checkout.on_step = None
    assert events == [NotificationOutcome.DEFERRED]
    (auth,) = gateway.authorizations()
    again = _event(NotificationKind.EXPIRED, placed.id, "evt_lapse", auth.id, 2500)
    assert platform.checkout.apply_notification(again) is NotificationOutcome.CANCELLED
    assert platform.orders.get(placed.id).status is OrderStatus.CANCELLED
    settled(platform, gateway)

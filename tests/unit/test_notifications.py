"""Provider events applied to orders: once each, converging with the saga."""

from __future__ import annotations

from datetime import timedelta

import pytest

from commerce_core import InvalidInput, Money, OrderStatus, Platform
from commerce_core.checkout import NotificationOutcome
from commerce_core.orders import SagaStep
from commerce_core.payments import NotificationKind, PaymentNotification, PaymentStatus
from commerce_core.testing import ManualClock, SandboxPaymentGateway
from tests.conftest import order, seed
from tests.unit.test_checkout import settled


def _event(kind: NotificationKind, reference: str, event_id: str = "evt_1",
           authorization: str = "auth_1") -> PaymentNotification:
    return PaymentNotification(provider="sandbox", event_id=event_id, kind=kind,
                               authorization_id=authorization, reference=reference,
                               amount=Money(2500, "EUR"))


def test_a_lapsed_hold_cancels_the_confirmed_order_once(
    platform: Platform, gateway: SandboxPaymentGateway
) -> None:
    seed(platform)
    placed = platform.checkout.place_order(order(("MUG", 2)), idempotency_key="k1")
    (auth,) = gateway.authorizations()
    gateway.expire_authorization(auth.id)
    event = _event(NotificationKind.EXPIRED, placed.id, authorization=auth.id)
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
        outcome = platform.checkout.apply_notification(_event(kind, placed.id, f"evt_{n}"))
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
    event = _event(NotificationKind.EXPIRED, placed.id, authorization=auth.id)

    def crash(*_: object, **__: object) -> None:
        raise KeyboardInterrupt

    with monkeypatch.context() as patched:
        patched.setattr(platform.checkout, "_record", crash)
        with pytest.raises(KeyboardInterrupt):
            platform.checkout.apply_notification(event)
    assert platform.orders.get(placed.id).status is OrderStatus.CANCELLED
    assert platform.checkout.apply_notification(event) is NotificationOutcome.NOTED
    assert platform.checkout.apply_notification(event) is NotificationOutcome.DUPLICATE
    settled(platform, gateway)

"""Stripe for commerce-core: the payment gateway over PaymentIntents with manual capture, and
the verification of Stripe's signed webhooks. ``commerce_core_stripe.provider`` is a local
stand-in for Stripe's API, for tests."""

from commerce_core_stripe.books import StripeBooks, StripeRecord
from commerce_core_stripe.gateway import StripePaymentGateway
from commerce_core_stripe.webhooks import StripeWebhooks

__all__ = ["StripeBooks", "StripePaymentGateway", "StripeRecord", "StripeWebhooks"]

"""Settings from the environment (the variables of the HTTP contract)."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from importlib.metadata import entry_points

import attrs

from commerce_core import FieldError, InvalidInput
from commerce_core_gateway import GatewayConfig, Principal, parse_api_keys
from commerce_core_gateway.routing import WebhookParser

__all__ = ["DEFAULTS", "Settings", "demo_keys"]


#: The environment variables of the HTTP contract and their defaults.
DEFAULTS = {
    "COMMERCE_ORDERS_URL": "sqlite:///var/orders.db",
    "COMMERCE_INVENTORY_URL": "sqlite:///var/inventory.db",
    "COMMERCE_PAYMENTS_URL": "sandbox://",
    "COMMERCE_RATE_LIMITS_URL": "memory://",
    "COMMERCE_EVENTS_URL": "memory://",
    "COMMERCE_WEBHOOK_SECRETS": "",
    "COMMERCE_API_KEYS": "",
    "COMMERCE_RATE_LIMIT": "100/second",
    "COMMERCE_CHECKOUT_RATE_LIMIT": "20/second",
    "COMMERCE_THREADS": "40",
    "COMMERCE_RECOVERY_GRACE": "60",
    "COMMERCE_RECOVERY_INTERVAL": "30",
    "COMMERCE_RESERVATION_TTL": "900",
}


@attrs.frozen(kw_only=True)
class Settings:
    """The server's configuration, as read from the environment."""

    orders_url: str
    inventory_url: str
    payments_url: str
    rate_limits_url: str
    events_url: str
    webhook_secrets: str
    api_keys: Mapping[str, Principal]
    rate_limit: str
    checkout_rate_limit: str
    #: Requests a worker runs at once in its thread pool (the rest wait, cheaply, in the event
    #: loop). Fewer threads fight less over the GIL: with an instant payment provider 4 is the
    #: fastest (``docs/performance.md``); with a real one, whose calls take hundreds of
    #: milliseconds of waiting, keep more.
    threads: int = 40
    #: Seconds an unfinished saga must have been left untouched before a recovery sweep
    #: takes it on: longer than any step of a live checkout on any host, so that neither the
    #: sweep at start-up nor the periodic one drives a checkout another worker is running.
    recovery_grace: float = 60.0
    #: Seconds between each worker's recovery sweeps (which also expire reservations).
    recovery_interval: float = 30.0
    #: Seconds a checkout's reservation lasts before an expiry sweep may release it.
    reservation_ttl: float = 900.0

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """Unset or empty variables take their defaults (`DEFAULTS`)."""
        def get(name: str) -> str:
            return env.get(name) or DEFAULTS[name]

        return cls(
            orders_url=get("COMMERCE_ORDERS_URL"),
            inventory_url=get("COMMERCE_INVENTORY_URL"),
            payments_url=get("COMMERCE_PAYMENTS_URL"),
            rate_limits_url=get("COMMERCE_RATE_LIMITS_URL"),
            events_url=get("COMMERCE_EVENTS_URL"),
            webhook_secrets=env.get("COMMERCE_WEBHOOK_SECRETS", ""),
            api_keys=parse_api_keys(get("COMMERCE_API_KEYS")),
            rate_limit=get("COMMERCE_RATE_LIMIT"),
            checkout_rate_limit=get("COMMERCE_CHECKOUT_RATE_LIMIT"),
            threads=_threads(get("COMMERCE_THREADS")),
            recovery_grace=_seconds(get, "COMMERCE_RECOVERY_GRACE"),
            recovery_interval=_seconds(get, "COMMERCE_RECOVERY_INTERVAL", minimum=0.1),
            reservation_ttl=_seconds(get, "COMMERCE_RESERVATION_TTL", minimum=1),
        )

    def gateway(self) -> GatewayConfig:
        return GatewayConfig(api_keys=self.api_keys, rate_limits_url=self.rate_limits_url,
                             rate_limit=self.rate_limit,
                             checkout_rate_limit=self.checkout_rate_limit,
                             webhooks=self.webhooks())

    def webhooks(self) -> dict[str, WebhookParser]:
        """With signing secrets, the webhook verifier the payment adapter registers for its
        URL scheme (entry-point group ``commerce_core.payment_webhooks``), served at
        ``/v1/webhooks/payments/<scheme>``."""
        if not self.webhook_secrets.strip():
            return {}
        scheme = self.payments_url.partition("://")[0].split("+", 1)[0].lower()
        found = tuple(entry_points(group="commerce_core.payment_webhooks", name=scheme))
        if not found:
            raise InvalidInput("COMMERCE_WEBHOOK_SECRETS is set, but the payment adapter for "
                               f"{scheme}:// takes no webhooks")
        parser: WebhookParser = found[0].load()(self.webhook_secrets)
        return {scheme: parser}


def demo_keys() -> str:
    """Fresh demo keys in the ``COMMERCE_API_KEYS`` format: one admin, two customers."""
    def key(prefix: str) -> str:
        return f"{prefix}_{secrets.token_urlsafe(12)}"

    return (f"{key('admin')}=admin,{key('alice')}=customer:alice,"
            f"{key('bob')}=customer:bob")




def _threads(text: str) -> int:
    if not text.strip().isdigit() or not 1 <= int(text) <= 1000:
        raise InvalidInput("invalid server settings", [
            FieldError("COMMERCE_THREADS", "must be a whole number from 1 to 1000")])
    return int(text)


def _seconds(get: Callable[[str], str], name: str, *, minimum: float = 0) -> float:
    text = get(name).strip()
    try:
        value = float(text)
    except ValueError:
        value = -1
    if not minimum <= value <= 86_400 * 30:  # NaN compares false, and is refused too
        raise InvalidInput("invalid server settings", [
            FieldError(name, f"must be a number of seconds from {minimum:g} to 2592000")])
    return value

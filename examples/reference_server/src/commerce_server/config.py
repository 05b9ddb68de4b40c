"""Settings from the environment (the variables of the HTTP contract)."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable, Mapping
from datetime import timedelta
from importlib.metadata import entry_points

import attrs

from commerce_core import FieldError, InvalidInput
from commerce_core.checkout import CheckoutLimits
from commerce_core_admin import AdminConfig
from commerce_core_gateway import GatewayConfig, Principal, parse_api_keys
from commerce_core_gateway.routing import WebhookParser
from commerce_core_gateway.security import RateLimiter
from commerce_core_prometheus import allowed_networks
from commerce_core_prometheus.http import Network

__all__ = ["DEFAULTS", "MIN_KEY_LENGTH", "Settings", "demo_keys"]


#: The environment variables of the HTTP contract and their defaults.
DEFAULTS = {
    "COMMERCE_ORDERS_URL": "sqlite:///var/orders.db",
    "COMMERCE_INVENTORY_URL": "sqlite:///var/inventory.db",
    "COMMERCE_PAYMENTS_URL": "sandbox://",
    "COMMERCE_RATE_LIMITS_URL": "memory://",
    "COMMERCE_EVENTS_URL": "memory://",
    "COMMERCE_WEBHOOK_SECRETS": "",
    "COMMERCE_API_KEYS": "",
    "COMMERCE_ADMIN_SECRET": "",
    "COMMERCE_METRICS_ALLOW": "127.0.0.1,::1",
    "COMMERCE_LOG_FORMAT": "text",
    "COMMERCE_RATE_LIMIT": "100/second",
    "COMMERCE_CHECKOUT_RATE_LIMIT": "20/second",
    "COMMERCE_THREADS": "40",
    "COMMERCE_RECOVERY_GRACE": "60",
    "COMMERCE_RECOVERY_INTERVAL": "30",
    "COMMERCE_RESERVATION_TTL": "900",
    "COMMERCE_AUTH_FAILURE_LIMIT": "20/minute",
    "COMMERCE_BODY_TIMEOUT": "10",
    "COMMERCE_HEADER_TIMEOUT": "10",
    "COMMERCE_SEND_TIMEOUT": "30",
    "COMMERCE_MAX_CONNECTIONS": "1000",
    "COMMERCE_TRUSTED_PROXIES": "",
    "COMMERCE_MAX_UNITS_PER_SKU": "",
    "COMMERCE_MAX_OPEN_ORDERS": "",
    "COMMERCE_FAILED_ORDER_RETENTION_DAYS": "30",
    "COMMERCE_IDEMPOTENCY_RETENTION_DAYS": "7",
    "COMMERCE_PRICES_INCLUDE_TAX": "false",
    "COMMERCE_PAYMENT_RETRY_TOTAL": "10",
    "COMMERCE_TLS_CERTFILE": "",
    "COMMERCE_TLS_KEYFILE": "",
}

#: The shortest API key the server accepts outside ``--demo``: 24 characters of a random
#: key are far beyond guessing at any rate the auth-failure limit lets through.
MIN_KEY_LENGTH = 24


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
    #: Failed authentications per client address, ``limits`` notation; past it, 429.
    auth_failure_limit: str = "20/minute"
    #: Seconds a request's body may take to arrive (408 after), and its headers.
    body_timeout: float = 10.0
    header_timeout: float = 10.0
    #: Seconds a response may wait for a client that stopped reading it; dropped after.
    send_timeout: float = 30.0
    #: Connections and requests a worker serves at once; beyond, 503 at once.
    max_connections: int = 1000
    #: Addresses of the reverse proxies whose ``X-Forwarded-For`` is believed, comma
    #: separated (uvicorn's ``forwarded_allow_ips``); none by default.
    trusted_proxies: str = ""
    #: What one customer may order (unset: no limit), and for how many days failed
    #: checkouts are kept (0: for ever).
    max_units_per_sku: int | None = None
    max_open_orders: int | None = None
    failed_order_retention_days: int = 30
    #: Days the idempotency keys of requests that made no order are kept (0: for ever).
    idempotency_retention_days: int = 7
    #: Whether catalogue and shipping prices include tax (shop-wide): the standard pricing
    #: then shows the tax contained in them instead of adding it.
    prices_include_tax: bool = False
    #: Signs the admin console's session cookies (32 characters or more, the same for every
    #: worker). Unset: derived from the admin API keys, so that it is the same in every
    #: worker and changes (signing everyone out) when the keys change.
    admin_secret: str = ""
    #: Client addresses or networks that may read ``GET /metrics`` without a key (an
    #: admin key may always): a Prometheus beside the server, by default.
    metrics_allow: tuple[Network, ...] = ()
    #: ``text`` (uvicorn's) or ``json``: one object a line, with the request, order and
    #: trace ids
    log_format: str = "text"
    #: Seconds a call to the payment provider may take with its retries before the
    #: checkout stops waiting (and recovery finds out what happened).
    payment_retry_total: float = 10.0
    #: A certificate (chain) and its private key, PEM files: the server speaks HTTPS.
    tls_certfile: str = ""
    tls_keyfile: str = ""

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
            rate_limit=_rate(get, "COMMERCE_RATE_LIMIT"),
            checkout_rate_limit=_rate(get, "COMMERCE_CHECKOUT_RATE_LIMIT"),
            threads=_threads(get("COMMERCE_THREADS")),
            recovery_grace=_seconds(get, "COMMERCE_RECOVERY_GRACE"),
            recovery_interval=_seconds(get, "COMMERCE_RECOVERY_INTERVAL", minimum=0.1),
            reservation_ttl=_seconds(get, "COMMERCE_RESERVATION_TTL", minimum=1),
            auth_failure_limit=_rate(get, "COMMERCE_AUTH_FAILURE_LIMIT"),
            body_timeout=_seconds(get, "COMMERCE_BODY_TIMEOUT", minimum=0.1),
            header_timeout=_seconds(get, "COMMERCE_HEADER_TIMEOUT", minimum=0.1),
            send_timeout=_seconds(get, "COMMERCE_SEND_TIMEOUT", minimum=0.1),
            max_connections=_count(get, "COMMERCE_MAX_CONNECTIONS"),
            trusted_proxies=env.get("COMMERCE_TRUSTED_PROXIES", ""),
            max_units_per_sku=_optional_count(env, "COMMERCE_MAX_UNITS_PER_SKU"),
            max_open_orders=_optional_count(env, "COMMERCE_MAX_OPEN_ORDERS"),
            failed_order_retention_days=_count(
                get, "COMMERCE_FAILED_ORDER_RETENTION_DAYS", minimum=0),
            idempotency_retention_days=_count(
                get, "COMMERCE_IDEMPOTENCY_RETENTION_DAYS", minimum=0),
            prices_include_tax=_flag(get, "COMMERCE_PRICES_INCLUDE_TAX"),
            admin_secret=_admin_secret(env.get("COMMERCE_ADMIN_SECRET", "")),
            metrics_allow=_networks(get("COMMERCE_METRICS_ALLOW")),
            log_format=_log_format(get("COMMERCE_LOG_FORMAT")),
            payment_retry_total=_seconds(get, "COMMERCE_PAYMENT_RETRY_TOTAL", minimum=0.01),
            **_tls(env),
        )

    def limits(self) -> CheckoutLimits:
        return CheckoutLimits(max_units_per_sku=self.max_units_per_sku,
                              max_open_orders=self.max_open_orders)

    def failed_order_retention(self) -> timedelta | None:
        days = self.failed_order_retention_days
        return timedelta(days=days) if days else None

    def idempotency_retention(self) -> timedelta | None:
        days = self.idempotency_retention_days
        return timedelta(days=days) if days else None

    def weak_keys(self) -> list[str]:
        """The principals whose API keys are too short to resist guessing (under
        `MIN_KEY_LENGTH` characters), each as ``admin`` or ``customer:<id>``."""
        return sorted(principal.id for key, principal in self.api_keys.items()
                      if len(key) < MIN_KEY_LENGTH)

    def gateway(self) -> GatewayConfig:
        return GatewayConfig(api_keys=self.api_keys, rate_limits_url=self.rate_limits_url,
                             rate_limit=self.rate_limit,
                             checkout_rate_limit=self.checkout_rate_limit,
                             auth_failure_limit=self.auth_failure_limit,
                             body_timeout=self.body_timeout, webhooks=self.webhooks(),
                             trusted_proxies=self.trusted_proxies)

    def admin(self) -> AdminConfig:
        """The console's configuration: the same keys, the same rate-limit storage."""
        admins = sorted(key for key, principal in self.api_keys.items()
                        if principal.role.value == "admin")
        # no admin key: nobody can sign in, and a secret made up now keeps it that way
        secret = self.admin_secret or (hashlib.sha256("\n".join(
            ["commerce-core-admin-session", *admins]).encode()).hexdigest()
            if admins else secrets.token_hex(32))
        return AdminConfig(session_secret=secret, api_keys=self.api_keys,
                           rate_limits_url=self.rate_limits_url)

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


def _log_format(value: str) -> str:
    if value.strip().lower() not in ("text", "json"):
        raise InvalidInput("invalid COMMERCE_LOG_FORMAT", [FieldError(
            "COMMERCE_LOG_FORMAT", "must be text or json")])
    return value.strip().lower()


def _networks(value: str) -> tuple[Network, ...]:
    try:
        return tuple(allowed_networks(value))
    except ValueError as error:
        raise InvalidInput("invalid COMMERCE_METRICS_ALLOW", [FieldError(
            "COMMERCE_METRICS_ALLOW", f"must be addresses or networks: {error}")]) from None


def _admin_secret(value: str) -> str:
    if value and len(value) < 32:
        raise InvalidInput("invalid COMMERCE_ADMIN_SECRET", [FieldError(
            "COMMERCE_ADMIN_SECRET", "must be at least 32 characters")])
    return value


def demo_keys() -> str:
    """Fresh demo keys in the ``COMMERCE_API_KEYS`` format: one admin, two customers."""
    def key(prefix: str) -> str:
        return f"{prefix}_{secrets.token_urlsafe(24)}"  # 32 random characters

    return (f"{key('admin')}=admin,{key('alice')}=customer:alice,"
            f"{key('bob')}=customer:bob")




def _tls(env: Mapping[str, str]) -> dict[str, str]:
    cert, key = (env.get(f"COMMERCE_TLS_{name}", "").strip() for name in ("CERTFILE", "KEYFILE"))
    if bool(cert) != bool(key):
        raise InvalidInput("invalid server settings", [FieldError(
            "COMMERCE_TLS_KEYFILE" if cert else "COMMERCE_TLS_CERTFILE",
            "HTTPS needs both COMMERCE_TLS_CERTFILE and COMMERCE_TLS_KEYFILE")])
    return {"tls_certfile": cert, "tls_keyfile": key}


def _threads(text: str) -> int:
    if not (text.strip().isascii() and text.strip().isdigit()) or not 1 <= int(text) <= 1000:
        raise InvalidInput("invalid server settings", [
            FieldError("COMMERCE_THREADS", "must be a whole number from 1 to 1000")])
    return int(text)


def _rate(get: Callable[[str], str], name: str) -> str:
    """A rate in ``limits`` notation (``100/second``, ``20 per minute``), checked here so that
    a wrong one is named at start-up, not met by every worker."""
    text = get(name).strip()
    try:
        amount = RateLimiter.parse(text).amount
    except InvalidInput:
        amount = 0
    if amount < 1:  # 0/second would refuse every request
        raise InvalidInput("invalid server settings", [FieldError(
            name, f"must be a rate such as 100/second or 20/minute, not {text!r}")])
    return text


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


def _count(get: Callable[[str], str], name: str, *, minimum: int = 1) -> int:
    text = get(name).strip()
    if not (text.isascii() and text.isdigit()) or not minimum <= int(text) <= 1_000_000:
        raise InvalidInput("invalid server settings", [
            FieldError(name, f"must be a whole number from {minimum} to 1000000")])
    return int(text)


def _flag(get: Callable[[str], str], name: str) -> bool:
    text = get(name).strip().lower()
    if text not in ("true", "false"):
        raise InvalidInput("invalid server settings", [
            FieldError(name, "must be true or false")])
    return text == "true"


def _optional_count(env: Mapping[str, str], name: str) -> int | None:
    return _count(env.__getitem__, name) if env.get(name, "").strip() else None

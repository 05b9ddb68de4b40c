"""Adapters found by URL scheme through entry points, loaded only when a URL asks for them."""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

from commerce_core.errors import AdapterNotInstalled, FieldError, InvalidInput

__all__ = [
    "EVENT_PUBLISHERS",
    "INVENTORY_STORES",
    "ORDER_STORES",
    "PAYMENT_GATEWAYS",
    "load_adapter",
]

ORDER_STORES = "commerce_core.order_stores"
INVENTORY_STORES = "commerce_core.inventory_stores"
PAYMENT_GATEWAYS = "commerce_core.payment_gateways"
EVENT_PUBLISHERS = "commerce_core.event_publishers"

#: What to install for the schemes first-party adapters serve, for the error message.
_HINTS = {
    "sqlite": "commerce-core[sqlalchemy]",
    "postgresql": "commerce-core[sqlalchemy] psycopg[binary]",
    "mysql": "commerce-core[sqlalchemy] pymysql",
    "mariadb": "commerce-core[sqlalchemy] pymysql",
    "amqp": "commerce-core[rabbitmq]",
    "amqps": "commerce-core[rabbitmq]",
    "stripe": "commerce-core[stripe]",
}


def scheme_of(url: str) -> str:
    """``postgresql+psycopg://...`` -> ``postgresql``."""
    scheme, sep, _ = url.partition("://")
    if not sep or not scheme:
        raise InvalidInput("invalid adapter URL", [FieldError("url", f"{url!r} has no scheme")])
    return scheme.split("+", 1)[0].lower()


def load_adapter(group: str, url: str) -> Any:
    """Build the adapter registered for ``url``'s scheme in ``group`` by calling its factory
    with the whole URL."""
    scheme = scheme_of(url)
    found = entry_points(group=group, name=scheme)
    hint = f"pip install '{_HINTS.get(scheme, f'a package that registers {scheme!r}')}'"
    if not found:
        raise AdapterNotInstalled(group, scheme, hint)
    (entry,) = tuple(found)[:1]
    try:
        # a driver may be imported by the factory itself (SQLAlchemy imports it when the
        # engine is created), so both loading and calling can miss a package
        return entry.load()(url)
    except ImportError as exc:
        raise AdapterNotInstalled(group, scheme, f"{hint} ({exc})") from exc

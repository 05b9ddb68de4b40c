"""Adapters found by URL scheme through entry points, loaded only when a URL asks for them."""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

from commerce_core.errors import AdapterBroken, AdapterNotInstalled, FieldError, InvalidInput

__all__ = [
    "EVENT_PUBLISHERS",
    "INVENTORY_STORES",
    "ORDER_STORES",
    "PAYMENT_GATEWAYS",
    "PORT_METHODS",
    "install_hint",
    "load_adapter",
]

ORDER_STORES = "commerce_core.order_stores"
INVENTORY_STORES = "commerce_core.inventory_stores"
PAYMENT_GATEWAYS = "commerce_core.payment_gateways"
EVENT_PUBLISHERS = "commerce_core.event_publishers"

#: What to install for the schemes first-party adapters serve, for the error message (each
#: requirement quoted on its own, so that the command can be pasted into a shell).
_HINTS: dict[str, tuple[str, ...]] = {
    "sqlite": ("commerce-core[sqlalchemy]",),
    "postgresql": ("commerce-core[sqlalchemy]", "psycopg[binary]"),
    "mysql": ("commerce-core[sqlalchemy]", "pymysql"),
    "mariadb": ("commerce-core[sqlalchemy]", "pymysql"),
    "amqp": ("commerce-core[rabbitmq]",),
    "amqps": ("commerce-core[rabbitmq]",),
    "stripe": ("commerce-core[stripe]",),
}

#: Schemes people write that no adapter serves, and the URL they mean.
_MEANT = {
    "postgres": "postgresql+psycopg://",
    "pg": "postgresql+psycopg://",
    "psql": "postgresql+psycopg://",
}

#: The drivers the first-party SQL adapter is tested with, by scheme (a URL without one gets
#: SQLAlchemy's default driver, which is not installed with commerce-core).
_DRIVERS = {"postgresql": "postgresql+psycopg://", "mysql": "mysql+pymysql://",
            "mariadb": "mariadb+pymysql://"}

#: The methods each port's adapter must have (checked when the adapter is built).
PORT_METHODS: dict[str, tuple[str, ...]] = {
    ORDER_STORES: ("unit_of_work", "close"),
    INVENTORY_STORES: ("unit_of_work", "close"),
    # (``list_refunds``, ``lookup_delay`` and ``close`` are optional: `RefundLookup`,
    # `DelayedLookup`)
    PAYMENT_GATEWAYS: ("authorize", "capture", "void", "refund", "find_authorization"),
    EVENT_PUBLISHERS: ("publish", "close"),
}


def scheme_of(url: str) -> str:
    """``postgresql+psycopg://...`` -> ``postgresql``."""
    scheme, sep, _ = url.partition("://")
    if not sep or not scheme:
        raise InvalidInput("invalid adapter URL", [FieldError("url", f"{url!r} has no scheme")])
    return scheme.split("+", 1)[0].lower()


def install_hint(scheme: str) -> str:
    """What to run to get the adapter of ``scheme``."""
    wanted = _HINTS.get(scheme)
    if wanted is None:
        return f"install a package that registers the {scheme!r} scheme"
    return "pip install " + " ".join(f"'{requirement}'" for requirement in wanted)


def _url_hint(url: str) -> str:
    """How to write the URL so that the tested driver is used, if it names none."""
    scheme = url.partition("://")[0].lower()
    meant = _DRIVERS.get(scheme)
    if meant is None:
        return ""
    return f"; or write the URL as {meant}… to use the driver the extra installs"


def load_adapter(group: str, url: str) -> Any:
    """Build the adapter registered for ``url``'s scheme in ``group`` by calling its factory
    with the whole URL, and check that it has the methods of its port.

    Raises `AdapterNotInstalled` (what to install) when no adapter serves the scheme or its
    driver is missing, and `AdapterBroken` (naming the entry point) when one is installed
    but does not import, load or build what its port needs."""
    scheme = scheme_of(url)
    found = entry_points(group=group, name=scheme)
    if not found:
        if scheme in _MEANT:
            raise AdapterNotInstalled(group, scheme, f"did you mean {_MEANT[scheme]}…? "
                                      f"({install_hint(scheme_of(_MEANT[scheme]))})")
        raise AdapterNotInstalled(group, scheme, install_hint(scheme))
    targets = sorted({entry.value for entry in found})
    if len(targets) > 1:
        # which one would load depends on the order of sys.path: never guess
        raise AdapterBroken(group, scheme, " and ".join(f"{scheme} = {t}" for t in targets),
                            "is registered by more than one installed package: uninstall "
                            "one, or give yours another scheme")
    (entry,) = tuple(found)[:1]
    named = f"{entry.name} = {entry.value}"
    try:
        factory = entry.load()
    except ImportError as exc:
        hint = f" ({install_hint(scheme)})" if scheme in _HINTS else ""
        raise AdapterBroken(group, scheme, named,
                            f"cannot be imported: {exc}{hint}") from exc
    except Exception as exc:
        raise AdapterBroken(group, scheme, named, f"does not load: {exc!r}") from exc
    if not callable(factory):
        raise AdapterBroken(group, scheme, named, f"names {factory!r}, which is not callable")
    try:
        # a driver may be imported by the factory itself (SQLAlchemy imports it when the
        # engine is created), so calling it can miss a package too
        adapter = factory(url)
    except ImportError as exc:
        raise AdapterNotInstalled(group, scheme, f"{install_hint(scheme)}{_url_hint(url)} "
                                  f"({exc})") from exc
    missing = [name for name in PORT_METHODS.get(group, ()) if not hasattr(adapter, name)]
    if missing:
        close = getattr(adapter, "close", None)
        if callable(close):
            close()
        raise AdapterBroken(group, scheme, named, "built an object without the port's "
                            f"{', '.join(missing)} ({type(adapter).__name__})")
    return adapter

"""The platform described as a FINOS CALM 1.1 architecture (architecture as code).

`describe` turns what a deployment is configured with (its stores' and provider's URLs,
where the HTTP API listens, its rate limit and broker) into a CALM 1.1 document: the
client's nine nodes under their unique ids (``customer``, ``admin``, ``api-gateway``,
``order-service``, ``inventory-service``, ``payment-service``, ``order-database``,
``inventory-database``, ``ecommerce-platform``), nodes for what is configured besides
(``payment-provider``, ``rate-limit-storage``, ``event-broker``), interfaces read from the
URLs (protocol, host, port, database; never a user, password, key or query), the
relationships between them, and the checkout as a flow over those relationships.

The core only builds the document (plain data, ready for ``json.dumps``); validating it
against the CALM meta schemas (`meta_schemas`) is the host's business (it needs
``jsonschema``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from importlib.metadata import PackageNotFoundError, version
from typing import Any
from urllib.parse import parse_qs, unquote

import attrs

from commerce_core.retry import RetryPolicy

__all__ = ["CALM_SCHEMA", "Deployment", "describe", "interface_of", "pool_size_of"]

CALM_SCHEMA = "https://calm.finos.org/release/1.1/meta/calm.json"

#: the database engines of the URL schemes the first-party adapters serve
_ENGINES = {"sqlite": "SQLite", "postgresql": "PostgreSQL", "mysql": "MySQL",
            "mariadb": "MariaDB", "memory": "in-process memory"}
#: default ports, for a URL that names none
_PORTS = {"postgresql": 5432, "mysql": 3306, "mariadb": 3306, "redis": 6379,
          "rediss": 6379, "amqp": 5672, "amqps": 5671, "http": 80, "https": 443}


@attrs.frozen(kw_only=True)
class Deployment:
    """What a running platform is configured with: the input of `describe`. URLs are given
    as configured (secrets in them never reach the document)."""

    orders_url: str
    inventory_url: str
    payments_url: str
    #: where the HTTP API listens (``http://0.0.0.0:8000/v1``), if the host serves one
    gateway_url: str | None = None
    #: the API's rate limit per principal, as the gateway says it (``100/second``)
    rate_limit: str | None = None
    rate_limit_storage_url: str | None = None
    broker_url: str | None = None
    workers: int = 1
    #: connections each process keeps open per server database, unless its URL says
    #: (``?pool_size=``); ``None``: not stated
    pool_size: int | None = None
    store_retry: RetryPolicy = attrs.field(factory=RetryPolicy.for_store)
    payment_retry: RetryPolicy = attrs.field(factory=RetryPolicy)
    version: str = ""


def _version() -> str:
    try:
        return version("commerce-core")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "unknown"


#: SQLAlchemy's own reading of a URL (``sqlalchemy.engine.url._parse_url``): a password may
#: hold ``/``, ``?`` or ``#``, the database is what follows the first ``/`` after the host,
#: and the user, password and database are percent-decoded; read here the same way, so that
#: the document names the database the store opens
_URL = re.compile(r"""
    (?P<name>[\w+.-]+)://
    (?:(?P<username>[^:/]*)(?::(?P<password>[^@]*))?@)?
    (?:(?:\[(?P<ipv6host>[^/?]+)\]|(?P<ipv4host>[^/:?]+))?(?::(?P<port>[^/?]*))?)?
    (?:/(?P<database>[^?]*))?
    (?:\?(?P<query>.*))?
    """, re.VERBOSE | re.DOTALL)


@attrs.frozen
class _Parts:
    scheme: str
    host: str | None
    port: int | None
    database: str | None
    query: dict[str, list[str]]


def _parts(url: str) -> _Parts:
    found = _URL.fullmatch(url)
    if found is None:
        return _Parts(url.partition(":")[0].split("+", 1)[0].lower(), None, None, None, {})
    scheme = found["name"].split("+", 1)[0].lower()
    query = parse_qs(found["query"] or "", keep_blank_values=True)
    host = found["ipv6host"] or found["ipv4host"] or None
    port_text = found["port"] or ""
    port = int(port_text) if port_text.isascii() and port_text.isdigit() else None
    database = unquote(found["database"]) if found["database"] else None
    if scheme == "postgresql":  # libpq's own parameters in the query win over the URL's
        host = (query.get("host") or [host])[-1] or None
        named_port = (query.get("port") or [""])[-1]
        port = int(named_port) if named_port.isascii() and named_port.isdigit() else port
        database = (query.get("dbname") or [database])[-1] or None
    elif scheme in ("mysql", "mariadb") and query.get("unix_socket"):
        host = query["unix_socket"][-1]
    if port is not None and not 0 < port < 65536:
        port = None
    return _Parts(scheme, host, port, database, query)


def _scheme(url: str) -> str:
    return _parts(url).scheme


def interface_of(unique_id: str, url: str, *, protocol: str | None = None) -> dict[str, Any]:
    """A CALM interface read from a URL as SQLAlchemy reads it: its protocol, host (or a
    Unix socket's folder), port and database (or file); never its user, password, the
    rest of its query or fragment."""
    parts = _parts(url)
    scheme = parts.scheme
    found: dict[str, Any] = {"unique-id": unique_id, "protocol": protocol or scheme.upper()}
    if scheme == "sqlite":
        # SQLAlchemy's form: sqlite:///relative/file.db, sqlite:////absolute/file.db, and
        # sqlite:///file:path?uri=true
        path = parts.database or ""
        if (parts.query.get("uri") or [""])[-1].lower() == "true" and path.startswith("file:"):
            path = unquote(path[len("file:"):].split("?", 1)[0])
        found["path"] = path
        return found
    if parts.host:
        found["host"] = parts.host
    if parts.port or (scheme in _PORTS and parts.port is None and not _bad_port(url)):
        found["port"] = parts.port or _PORTS[scheme]
    database = (parts.database or "").strip("/") if scheme != "amqp" else parts.database
    if database and scheme in ("postgresql", "mysql", "mariadb", "redis", "rediss"):
        found["database"] = database
    elif database and scheme in ("amqp", "amqps"):
        found["virtual-host"] = database
    elif database and scheme in ("http", "https"):
        found["path"] = "/" + database
    schema = parts.query.get("schema")
    if schema and scheme == "postgresql":  # the store's tables in a schema of the database
        found["schema"] = schema[-1]
    return found


def _bad_port(url: str) -> bool:
    """Whether the URL names a port that is no port (then none is stated, not the default)."""
    found = _URL.fullmatch(url)
    return bool(found and found["port"])


def pool_size_of(url: str, default: int | None) -> int | None:
    """The connections a store keeps per process: the URL's ``pool_size``, else
    ``default``; ``None`` for what has no pool of server connections (a SQLite file, memory)."""
    parts = _parts(url)
    if parts.scheme not in ("postgresql", "mysql", "mariadb"):
        return None
    stated = parts.query.get("pool_size")
    if stated and stated[-1].isascii() and stated[-1].isdigit():
        return int(stated[-1])
    return default


def _retry(policy: RetryPolicy) -> dict[str, Any]:
    return {"strategy": "exponential backoff with jitter", "attempts": policy.attempts,
            "initial-wait-ms": round(policy.initial * 1000), "total-ms": round(policy.total * 1000)}


def _connects(unique_id: str, description: str, source: str, destination: str,
              interfaces: list[str] | None = None, *, protocol: str | None = None,
              metadata: Mapping[str, Any] | None = None) -> dict[str, Any]:
    target: dict[str, Any] = {"node": destination}
    if interfaces:
        target["interfaces"] = interfaces
    relationship: dict[str, Any] = {
        "unique-id": unique_id, "description": description,
        "relationship-type": {"connects": {"source": {"node": source}, "destination": target}},
    }
    if protocol:
        relationship["protocol"] = protocol
    if metadata:
        relationship["metadata"] = dict(metadata)
    return relationship


#: the metadata of a relationship that is a call inside the process, not a network hop
IN_PROCESS = {"transport": "in-process call"}


def _store_connection(unique_id: str, description: str, source: str, destination: str, *,
                      url: str, d: Deployment) -> dict[str, Any]:
    scheme = _scheme(url)
    metadata: dict[str, Any] = {
        "transport": {"memory": "in-process memory", "sqlite": "file"}.get(scheme, "network"),
        "retry": _retry(d.store_retry)}
    pool = pool_size_of(url, d.pool_size)
    if pool is not None:
        metadata["pool-size"] = pool
    return _connects(unique_id, description, source, destination,
                     None if scheme == "memory" else [f"{destination}-sql"], metadata=metadata)


def _database(unique_id: str, name: str, what: str, url: str) -> dict[str, Any]:
    scheme = _scheme(url)
    node: dict[str, Any] = {
        "unique-id": unique_id, "node-type": "database", "name": name, "description": what,
        "metadata": {"engine": _ENGINES.get(scheme, scheme)},
    }
    if scheme != "memory":
        node["interfaces"] = [interface_of(f"{unique_id}-sql", url, protocol=scheme.upper())]
    return node


def describe(deployment: Deployment) -> dict[str, Any]:
    """The deployment as a CALM 1.1 architecture document (see the module's docstring)."""
    d = deployment if deployment.version else attrs.evolve(deployment, version=_version())
    if d.rate_limit is None:
        limit = {}
    elif d.workers > 1 and not d.rate_limit_storage_url:
        # each worker counts in its own memory: a principal gets the limit from each
        limit = {"rate-limit": f"{d.rate_limit} per principal per worker"}
    else:
        limit = {"rate-limit": f"{d.rate_limit} per principal"}
    gateway: dict[str, Any] = {
        "unique-id": "api-gateway", "node-type": "service", "name": "API Gateway",
        "description": "Central entry point for all client requests, providing routing, "
                       "rate limiting, and request validation",
        "metadata": {"workers": d.workers, **limit},
    }
    if d.gateway_url:
        gateway["interfaces"] = [interface_of("api-gateway-http", d.gateway_url)]
    in_process = {"deployment-type": "in-process library", "version": d.version}
    provider = _scheme(d.payments_url)
    nodes: list[dict[str, Any]] = [
        {"unique-id": "customer", "node-type": "actor", "name": "Customer",
         "description": "End customer using the e-commerce platform to browse and purchase "
                        "products"},
        {"unique-id": "admin", "node-type": "actor", "name": "Admin",
         "description": "Administrator managing orders, inventory, and platform operations"},
        gateway,
        {"unique-id": "order-service", "node-type": "service", "name": "Order Service",
         "description": "Manages order creation, fulfillment, and tracking (the checkout "
                        "saga)", "metadata": {**in_process, "store-retry": _retry(d.store_retry)}},
        {"unique-id": "inventory-service", "node-type": "service", "name": "Inventory Service",
         "description": "Manages product inventory, stock levels, and availability",
         "metadata": {**in_process, "store-retry": _retry(d.store_retry)}},
        {"unique-id": "payment-service", "node-type": "service", "name": "Payment Service",
         "description": "Handles payment processing, authorization, and settlement",
         "metadata": {**in_process, "payment-retry": _retry(d.payment_retry)}},
        _database("order-database", "Order Database",
                  "Stores orders, their payments and idempotency keys", d.orders_url),
        _database("inventory-database", "Inventory Database",
                  "Stores products, stock levels, reservations and the ledger",
                  d.inventory_url),
        {"unique-id": "payment-provider", "node-type": "system", "name": "Payment Provider",
         "description": f"The payment service provider ({provider})",
         "interfaces": [interface_of("payment-provider-api", d.payments_url)],
         "metadata": {"adapter": provider}},
        {"unique-id": "ecommerce-platform", "node-type": "system",
         "name": "E-Commerce Platform",
         "description": "Complete e-commerce platform comprising API gateway, services, and "
                        "databases"},
    ]
    relationships: list[dict[str, Any]] = [
        {"unique-id": "customer-interacts-gateway",
         "description": "Customers browse products, place and track orders",
         "relationship-type": {"interacts": {"actor": "customer", "nodes": ["api-gateway"]}}},
        {"unique-id": "admin-interacts-gateway",
         "description": "Admins manage orders, inventory and operations",
         "relationship-type": {"interacts": {"actor": "admin", "nodes": ["api-gateway"]}}},
        _connects("gateway-to-order-service", "The gateway routes order requests to the order "
                  "service (in process)", "api-gateway", "order-service", metadata=IN_PROCESS),
        _connects("gateway-to-inventory-service", "The gateway routes catalogue and stock "
                  "requests to the inventory service (in process)", "api-gateway",
                  "inventory-service", metadata=IN_PROCESS),
        _store_connection("order-service-to-order-database", "The order service stores "
                          "orders in its own database", "order-service", "order-database",
                          url=d.orders_url, d=d),
        _store_connection("inventory-service-to-inventory-database", "The inventory service "
                          "stores stock in its own database", "inventory-service",
                          "inventory-database", url=d.inventory_url, d=d),
        _connects("order-service-to-inventory-service", "The checkout saga reserves, holds "
                  "and releases stock", "order-service", "inventory-service",
                  metadata=IN_PROCESS),
        _connects("order-service-to-payment-service", "The order service has payments "
                  "authorized, captured and refunded", "order-service", "payment-service",
                  metadata={**IN_PROCESS, "retry": _retry(d.payment_retry)}),
        _connects("payment-service-to-payment-provider", "The payment service calls the "
                  "provider, an idempotency key on every call", "payment-service",
                  "payment-provider", ["payment-provider-api"],
                  metadata={"transport": "network", "retry": _retry(d.payment_retry)}),
    ]
    composed = ["api-gateway", "order-service", "inventory-service", "payment-service",
                "order-database", "inventory-database"]
    if d.rate_limit_storage_url:
        nodes.append({"unique-id": "rate-limit-storage", "node-type": "database",
                      "name": "Rate-limit storage",
                      "description": "Where the gateway counts requests per principal",
                      "interfaces": [interface_of("rate-limit-storage-api",
                                                  d.rate_limit_storage_url, protocol="TCP")],
                      "metadata": {"engine": _scheme(d.rate_limit_storage_url)}})
        relationships.append(_connects(
            "gateway-to-rate-limit-storage", "The gateway's rate limiter counts requests",
            "api-gateway", "rate-limit-storage", ["rate-limit-storage-api"], protocol="TCP"))
        composed.append("rate-limit-storage")
    if d.broker_url:
        nodes.append({"unique-id": "event-broker", "node-type": "system",
                      "name": "Event broker",
                      "description": "Where the outboxes' relays publish the domain events",
                      "interfaces": [interface_of("event-broker-amqp", d.broker_url,
                                                  protocol="AMQP")]})
        for service in ("order-service", "inventory-service"):
            relationships.append(_connects(
                f"{service}-to-event-broker", "The outbox relay publishes the store's events",
                service, "event-broker", ["event-broker-amqp"], protocol="AMQP"))
        composed.append("event-broker")
    relationships.append(
        {"unique-id": "platform-composition",
         "description": "The platform is composed of the gateway, the services and their "
                        "databases",
         "relationship-type": {"composed-of": {"container": "ecommerce-platform",
                                               "nodes": composed}}})
    steps = [
        ("customer-interacts-gateway", "The customer places an order under an idempotency key"),
        ("gateway-to-order-service", "The gateway validates it and starts the checkout"),
        ("order-service-to-order-database", "The order and its key are written, pending"),
        ("order-service-to-inventory-service", "Stock is reserved"),
        ("inventory-service-to-inventory-database", "Levels locked, the reservation written"),
        ("order-service-to-payment-service", "The payment is authorized"),
        ("payment-service-to-payment-provider", "The provider places the hold"),
        ("order-service-to-inventory-service", "The reservation is held for the order"),
        ("order-service-to-order-database", "The order is confirmed with the answer kept"),
    ]
    flow = {"unique-id": "checkout", "name": "Checkout",
            "description": "A customer's order across the two stores and the provider: the "
                           "saga of docs/architecture.md",
            "transitions": [{"relationship-unique-id": relationship, "sequence-number": n,
                             "description": text}
                            for n, (relationship, text) in enumerate(steps, start=1)]}
    return {
        "$schema": CALM_SCHEMA,
        "unique-id": "ecommerce-platform-deployment",
        "name": "E-commerce platform (as deployed)",
        "description": "The commerce-core platform as it is configured to run",
        "metadata": {"generator": "commerce-core", "version": d.version},
        "nodes": nodes,
        "relationships": relationships,
        "flows": [flow],
    }

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

from collections.abc import Mapping
from importlib.metadata import PackageNotFoundError, version
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

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


def _scheme(url: str) -> str:
    return urlsplit(url).scheme.split("+", 1)[0].lower()


def interface_of(unique_id: str, url: str, *, protocol: str | None = None) -> dict[str, Any]:
    """A CALM interface read from a URL: its protocol, host, port and database (or file);
    never its user, password, query or fragment."""
    parts = urlsplit(url)
    scheme = _scheme(url)
    found: dict[str, Any] = {"unique-id": unique_id, "protocol": protocol or scheme.upper()}
    if scheme == "sqlite":
        # SQLAlchemy's form: sqlite:///relative/file.db, sqlite:////absolute/file.db
        found["path"] = parts.path[1:]
        return found
    try:
        host, port = parts.hostname, parts.port
    except ValueError:  # a port that is not a number
        host, port = parts.hostname, None
    if host:
        found["host"] = host
    if port or scheme in _PORTS:
        found["port"] = port or _PORTS[scheme]
    path = parts.path.strip("/")
    if path and scheme in ("postgresql", "mysql", "mariadb", "redis", "rediss"):
        found["database"] = path
    elif path and scheme in ("amqp", "amqps"):
        found["virtual-host"] = unquote(path)
    elif path and scheme in ("http", "https"):
        found["path"] = "/" + path
    schema = parse_qs(parts.query).get("schema")
    if schema and scheme == "postgresql":  # the store's tables in a schema of the database
        found["schema"] = schema[-1]
    return found


def pool_size_of(url: str, default: int | None) -> int | None:
    """The connections a store keeps per process: the URL's ``pool_size``, else
    ``default``; ``None`` for what has no pool of server connections (a SQLite file, memory)."""
    if _scheme(url) not in ("postgresql", "mysql", "mariadb"):
        return None
    stated = parse_qs(urlsplit(url).query).get("pool_size")
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

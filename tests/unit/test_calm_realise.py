"""Issue 20, running from an architecture: `commerce_core.calm.realise` reads the settings
a CALM document names (the stores' databases, the gateway's interface and rate limit, the
rate-limit storage and broker), credentials from the host, and refuses what it cannot
realise, saying where."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import given

from commerce_core import InvalidInput
from commerce_core.calm import Deployment, Listen, Realisation, describe, realise
from tests.unit.test_calm import DEPLOYMENTS
from tests.unit.test_calm_check import CALMISH, JSON

CLIENT = json.loads((Path(__file__).parents[1] / "data" / "calm" /
                     "ecommerce-platform.json").read_text())


def test_the_clients_architecture_names_two_postgresql_databases_and_an_https_gateway(
) -> None:
    found = realise(CLIENT, credentials={"order-database": ("shop", "p@ss:/word"),
                                         "inventory-database": ("stock", None)})
    # JDBC is the client's word for a SQL connection; the engine metadata says which
    assert found == Realisation(
        orders_url="postgresql+psycopg://shop:p%40ss%3A%2Fword@orders-db:5432/orders"
                   "?pool_size=20",
        inventory_url="postgresql+psycopg://stock@inventory-db:5432/inventory?pool_size=20",
        gateway=Listen(protocol="HTTPS", host="0.0.0.0", port=443,  # noqa: S104
                       public_host="shop.example.com"),
        rate_limit="100/second")


def test_no_credential_is_ever_taken_from_the_document() -> None:
    document = copy.deepcopy(CLIENT)
    for node in document["nodes"]:
        for interface in node.get("interfaces", []):
            interface.update(user="intruder", password="from-the-file")
    found = realise(document)
    assert "intruder" not in repr(found) and "from-the-file" not in repr(found)
    assert found.orders_url.startswith("postgresql+psycopg://orders-db:5432/")


@pytest.mark.parametrize("name", ["demo", "memory", "servers"])
def test_what_describe_writes_realises_the_same_deployment(name: str) -> None:
    """The round trip: a document the platform wrote runs the platform it describes
    (credentials aside), and describes it again unchanged."""
    original = DEPLOYMENTS[name]
    document = describe(original)
    found = realise(document, credentials={
        "order-database": ("shop", "s3cret-pw"), "inventory-database": ("shop", "an0ther-pw"),
        "rate-limit-storage": (None, "redis-pw"), "event-broker": ("guest", "guest-pw")})
    again = Deployment(
        orders_url=found.orders_url, inventory_url=found.inventory_url,
        payments_url=original.payments_url, rate_limit=found.rate_limit,
        gateway_url=None if found.gateway is None else
        f"{found.gateway.protocol.lower()}://{found.gateway.public_host}:{found.gateway.port}/v1",
        rate_limit_storage_url=found.rate_limit_storage_url, broker_url=found.broker_url,
        workers=found.workers or 1, pool_size=original.pool_size, version=original.version)
    assert describe(again) == document
    if name == "servers":
        assert found.inventory_url == ("mysql+pymysql://shop:an0ther-pw@inventory-db:3306/"
                                       "inventory?pool_size=10")
        assert found.rate_limit_storage_url == "redis://:redis-pw@127.0.0.1:6379/0"
        assert found.broker_url == "amqp://guest:guest-pw@127.0.0.1:5672/%2F"
        assert found.workers == 4


def _change(path: str, value: Any) -> Any:
    """The client's document with one value set: ``node-id.key.key`` (``interfaces`` is the
    node's first interface) or ``@relationship-id.key``."""
    document = copy.deepcopy(CLIENT)
    head, *keys = path.split(".")
    if head.startswith("@"):
        target = next(r for r in document["relationships"] if r["unique-id"] == head[1:])
    else:
        target = next(n for n in document["nodes"] if n["unique-id"] == head)
    for key in keys[:-1]:
        target = target[key][0] if key == "interfaces" else target.setdefault(key, {})
    if value is None:
        target.pop(keys[-1], None)
    else:
        target[keys[-1]] = value
    return document


@pytest.mark.parametrize(("document", "where", "says"), [
    (_change("order-database.metadata.engine", "Oracle 19c"),
     "nodes.order-database.interfaces.order-database-jdbc", "not one the stores serve"),
    (_change("order-database.metadata", None),
     "nodes.order-database.interfaces.order-database-jdbc", "say it in the node's metadata"),
    (_change("order-database.interfaces.host", "db/../../etc?x=1"),
     "nodes.order-database.interfaces.order-database-jdbc.host", "host name or an address"),
    (_change("order-database.interfaces.host", "evil@attacker"),
     "nodes.order-database.interfaces.order-database-jdbc.host", "host name or an address"),
    (_change("order-database.interfaces.port", 70000),
     "nodes.order-database.interfaces.order-database-jdbc.port", "1 to 65535"),
    (_change("order-database.interfaces.port", True),
     "nodes.order-database.interfaces.order-database-jdbc.port", "1 to 65535"),
    (_change("inventory-database.interfaces.database", "x; DROP TABLE orders"),
     "nodes.inventory-database.interfaces.inventory-database-jdbc.database", "name the"),
    (_change("inventory-database.interfaces", []),
     "nodes.inventory-database.interfaces", "no host or file"),
    (_change("inventory-database.node-type", "service"),
     "nodes.inventory-database", "must be a database"),
    (_change("@order-service-to-order-database.metadata.pool-size", 0),
     "relationships.order-service-to-order-database.metadata.pool-size", "1 to 1000"),
    (_change("api-gateway.interfaces.path", "/api"),
     "nodes.api-gateway.interfaces.api-gateway-https.path", "/v1"),
    (_change("api-gateway.metadata.rate-limit", "100/second per IP"),
     "nodes.api-gateway.metadata.rate-limit", "per principal"),
    (_change("api-gateway.metadata.rate-limit", "0/second"),
     "nodes.api-gateway.metadata.rate-limit", "per principal"),
    (_change("api-gateway.metadata.workers", 0),
     "nodes.api-gateway.metadata.workers", "1 to 64"),
    ({**CLIENT, "nodes": [n for n in CLIENT["nodes"] if n["unique-id"] != "order-database"]},
     "nodes.order-database", "nowhere to go"),
])
def test_what_it_cannot_realise_is_refused_saying_where(
        document: dict[str, Any], where: str, says: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        realise(document)
    found = {error.path: error.message for error in raised.value.errors}
    assert where in found, found
    assert says in found[where]


def test_a_sqlite_memory_redis_and_broker_architecture() -> None:
    document = copy.deepcopy(CLIENT)
    nodes = {n["unique-id"]: n for n in document["nodes"]}
    nodes["order-database"]["interfaces"] = [{"unique-id": "f", "protocol": "SQLITE",
                                              "path": "/srv/shop/100% #1?.db"}]
    nodes["order-database"]["metadata"] = {"engine": "SQLite"}
    nodes["inventory-database"].pop("interfaces")
    nodes["inventory-database"]["metadata"] = {"engine": "in-process memory"}
    document["nodes"] += [
        {"unique-id": "rate-limit-storage", "node-type": "database", "name": "r",
         "description": "r", "metadata": {"engine": "memcached"},
         "interfaces": [{"unique-id": "r", "host": "cache", "port": 11211}]},
        {"unique-id": "event-broker", "node-type": "system", "name": "b", "description": "b",
         "interfaces": [{"unique-id": "b", "protocol": "AMQP", "host": "mq",
                         "virtual-host": "shop/eu"}]}]
    with pytest.raises(InvalidInput) as raised:
        realise(document)
    assert [e.path for e in raised.value.errors] == ["nodes.rate-limit-storage.metadata.engine"]
    document["nodes"][-2]["metadata"]["engine"] = "redis"
    found = realise(document, credentials={"event-broker": ("shop", None)})
    # the URL's database is percent-decoded by SQLAlchemy: the file is the one named
    assert found.orders_url == "sqlite:////srv/shop/100%25%20%231%3F.db"
    assert sa.make_url(found.orders_url).database == "/srv/shop/100% #1?.db"
    assert found.inventory_url == "memory://"
    assert found.rate_limit_storage_url == "redis://cache:11211"
    assert found.broker_url == "amqp://shop@mq/shop%2Feu"


@given(JSON | CALMISH)
def test_hostile_documents_are_refused_never_crash(document: Any) -> None:
    errors: tuple[Any, ...] = ("none",)
    try:
        realise(document)
    except InvalidInput as refused:
        errors = refused.errors
    assert errors  # a refusal says where


# found by the outside review ------------------------------------------------------------

@pytest.mark.parametrize(("path", "value"), [
    ("order-database.interfaces.host", "127.000.000.001"),
    ("order-database.interfaces.host", "127.1"),
    ("order-database.interfaces.host", "[1.2.3.4"),
    ("order-database.interfaces.host", "fe80::1%eth0"),
    ("order-database.interfaces.host", "db\n"),
    ("order-database.interfaces.database", "orders\n"),
    ("order-database.interfaces.schema", 7),
    ("order-database.interfaces.protocol", "MYSQL"),  # the engine says PostgreSQL 15
])
def test_values_that_would_mean_something_else_are_refused(path: str, value: Any) -> None:
    with pytest.raises(InvalidInput):
        realise(_change(path, value))


def test_an_ipv6_host_written_in_brackets_or_not_makes_one_url() -> None:
    for host in ("::1", "[::1]"):
        found = realise(_change("order-database.interfaces.host", host))
        assert found.orders_url.startswith("postgresql+psycopg://[::1]:5432/orders")
        assert sa.make_url(found.orders_url).host == "::1"


def test_a_schema_is_for_postgresql_and_a_sqlite_store_needs_a_file() -> None:
    document = _change("order-database.interfaces.schema", "shop")
    document = _change("order-database.metadata.engine", "MariaDB 11")
    for node in document["nodes"]:
        if node["unique-id"] == "order-database":
            node["interfaces"][0].update(protocol="JDBC", schema="shop")
    with pytest.raises(InvalidInput, match="schema is for a PostgreSQL"):
        realise(document)
    for path in (":memory:", "file:x.db"):
        memory = _change("order-database.interfaces", [{"unique-id": "m", "protocol": "SQLITE",
                                                         "path": path}])
        memory["nodes"][6]["metadata"] = {"engine": "SQLite"}
        with pytest.raises(InvalidInput, match="needs the path of its file"):
            realise(memory)


@pytest.mark.parametrize(("host", "bind"), [
    ("localhost", "127.0.0.1"), ("localhost.", "127.0.0.1"), ("ip6-localhost", "127.0.0.1"),
    ("::1", "::1"), ("10.1.2.3", "10.1.2.3"), ("shop.example.com", "0.0.0.0"),  # noqa: S104
])
def test_the_gateway_listens_on_a_local_name_locally(host: str, bind: str) -> None:
    gateway = realise(_change("api-gateway.interfaces.host", host)).gateway
    assert gateway is not None and gateway.host == bind


def test_a_rate_limit_is_written_as_limits_reads_it() -> None:
    found = realise(_change("api-gateway.metadata.rate-limit", "100 /\tSecond per principal"))
    assert found.rate_limit == "100/second"
    found = realise(_change("api-gateway.metadata.rate-limit", "5 per 10 minutes"))
    assert found.rate_limit == "5/10 minutes"

"""The platform described in CALM 1.1 (issue 20, its first part): every document
`commerce_core.calm.describe` produces validates against the CALM 1.1 meta schemas (JSON
Schema 2020-12, `jsonschema` with a `referencing` registry of the schema files the package
ships, `commerce_core.calm.meta_schemas`), keeps the client's node ids, and never carries a
secret of a URL."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from commerce_core.calm import CALM_SCHEMA, Deployment, describe, interface_of, meta_schemas

CALM = Path(__file__).parents[1] / "data" / "calm"
CLIENT_NODES = {"customer", "admin", "api-gateway", "order-service", "inventory-service",
                "payment-service", "order-database", "inventory-database",
                "ecommerce-platform"}


def _validator() -> Draft202012Validator:
    registry: Registry[Any] = Registry().with_resources(
        (schema["$id"], Resource.from_contents(schema)) for schema in meta_schemas())
    calm = registry.contents(CALM_SCHEMA)
    return Draft202012Validator(calm, registry=registry)


def _errors(document: dict[str, Any]) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
            for e in _validator().iter_errors(document)]


DEPLOYMENTS = {
    "demo": Deployment(orders_url="sqlite:///var/demo/orders.db",
                       inventory_url="sqlite:///var/demo/inventory.db",
                       payments_url="sandbox://", gateway_url="http://127.0.0.1:8000/v1"),
    "memory": Deployment(orders_url="memory://", inventory_url="memory://",
                         payments_url="sandbox://"),
    "servers": Deployment(
        orders_url="postgresql+psycopg://shop:s3cret-pw@orders-db:5432/orders?sslmode=require",
        inventory_url="mysql+pymysql://shop:an0ther-pw@inventory-db/inventory",
        payments_url="stripe://sk_test_51SECRETKEY@api.stripe.com",
        gateway_url="https://shop.example.com:443/v1", rate_limit="100/second",
        rate_limit_storage_url="redis://:redis-pw@127.0.0.1:6379/0",
        broker_url="amqp://guest:guest-pw@127.0.0.1:5672/%2F", workers=4, pool_size=10),
}


def test_the_clients_architecture_validates_against_the_meta_schemas() -> None:
    """The harness itself: the client's document is valid, and a broken one is not."""
    client = json.loads((CALM / "ecommerce-platform.json").read_text())
    assert _errors(client) == []
    broken = {**client, "nodes": [{**client["nodes"][0], "node-type": 7}]}
    assert _errors(broken)


@pytest.mark.parametrize("name", DEPLOYMENTS)
def test_every_document_described_validates_and_keeps_the_clients_node_ids(name: str) -> None:
    document = describe(DEPLOYMENTS[name])
    assert _errors(document) == []
    ids = [node["unique-id"] for node in document["nodes"]]
    assert set(ids) >= CLIENT_NODES and len(ids) == len(set(ids))
    relationships = {r["unique-id"] for r in document["relationships"]}
    # every relationship a flow or a relationship names exists
    for flow in document["flows"]:
        assert {t["relationship-unique-id"] for t in flow["transitions"]} <= relationships
    for relationship in document["relationships"]:
        kind = relationship["relationship-type"]
        named = set()
        if "connects" in kind:
            named = {kind["connects"]["source"]["node"], kind["connects"]["destination"]["node"]}
        elif "interacts" in kind:
            named = {kind["interacts"]["actor"], *kind["interacts"]["nodes"]}
        elif "composed-of" in kind:
            named = {kind["composed-of"]["container"], *kind["composed-of"]["nodes"]}
        assert named <= set(ids), relationship["unique-id"]


def test_the_client_relationships_are_there_under_their_ids() -> None:
    client = json.loads((CALM / "ecommerce-platform.json").read_text())
    intended = {r["unique-id"] for r in client["relationships"]}
    described = {r["unique-id"] for r in describe(DEPLOYMENTS["servers"])["relationships"]}
    assert intended <= described


def test_no_secret_of_any_url_reaches_the_document() -> None:
    text = json.dumps(describe(DEPLOYMENTS["servers"]))
    for secret in ("s3cret-pw", "an0ther-pw", "sk_test_51SECRETKEY", "redis-pw", "guest-pw",
                   "shop:", "sslmode"):
        assert secret not in text, secret


def test_interfaces_are_read_from_the_settings() -> None:
    servers = describe(DEPLOYMENTS["servers"])
    nodes = {node["unique-id"]: node for node in servers["nodes"]}
    assert nodes["order-database"]["interfaces"] == [
        {"unique-id": "order-database-sql", "protocol": "POSTGRESQL", "host": "orders-db",
         "port": 5432, "database": "orders"}]
    assert nodes["inventory-database"]["interfaces"][0]["port"] == 3306  # the default
    assert nodes["api-gateway"]["interfaces"] == [
        {"unique-id": "api-gateway-http", "protocol": "HTTPS", "host": "shop.example.com",
         "port": 443, "path": "/v1"}]
    assert nodes["api-gateway"]["metadata"] == {"workers": 4,
                                                "rate-limit": "100/second per principal"}
    assert {"rate-limit-storage", "event-broker", "payment-provider"} <= set(nodes)
    demo = {n["unique-id"]: n for n in describe(DEPLOYMENTS["demo"])["nodes"]}
    assert demo["order-database"]["interfaces"][0]["path"] == "var/demo/orders.db"
    assert "rate-limit-storage" not in demo and "event-broker" not in demo


@pytest.mark.parametrize("url", ["postgresql://u:p@db:notaport/x", "sqlite:////abs/o.db",
                                 "weird", "redis://[::1]:6379"])
def test_an_odd_url_still_gives_an_interface(url: str) -> None:
    found = interface_of("x", url)
    assert found["unique-id"] == "x" and "p@" not in json.dumps(found)


def test_a_sqlite_path_is_read_as_sqlalchemy_reads_it() -> None:
    assert interface_of("x", "sqlite:////srv/shop/o.db")["path"] == "/srv/shop/o.db"
    assert interface_of("x", "sqlite:///var/o.db")["path"] == "var/o.db"


def test_the_server_prints_its_configured_deployment_and_it_validates(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path,
) -> None:
    """``commerce-server calm``: the reference server's configuration (PostgreSQL for both
    stores, Redis for the rate limits, RabbitMQ for the events, four workers) as CALM,
    without opening anything and without a secret."""
    from commerce_server import cli  # noqa: PLC0415

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COMMERCE_API_KEYS", "a-long-enough-admin-key-for-tests=admin")
    monkeypatch.setenv("COMMERCE_ORDERS_URL",
                       "postgresql+psycopg://shop:pw-orders@127.0.0.1:5432/orders")
    monkeypatch.setenv("COMMERCE_INVENTORY_URL",
                       "postgresql+psycopg://shop:pw-stock@127.0.0.1:5432/inventory")
    monkeypatch.setenv("COMMERCE_RATE_LIMITS_URL", "redis://127.0.0.1:6379/0")
    monkeypatch.setenv("COMMERCE_EVENTS_URL", "amqp://guest:pw-broker@127.0.0.1:5672/%2F")
    monkeypatch.setenv("COMMERCE_PAYMENTS_URL", f"sandbox:///{tmp_path}/sandbox.db")
    assert cli.main(["calm", "--workers", "4", "--port", "8080"]) == 0
    out = capsys.readouterr().out
    document = json.loads(out)
    assert _errors(document) == []
    nodes = {node["unique-id"]: node for node in document["nodes"]}
    assert {"rate-limit-storage", "event-broker"} <= set(nodes)
    assert nodes["api-gateway"]["metadata"]["workers"] == 4
    assert nodes["api-gateway"]["interfaces"][0]["port"] == 8080
    assert nodes["inventory-database"]["interfaces"][0]["database"] == "inventory"
    assert not any(secret in out for secret in ("pw-orders", "pw-stock", "pw-broker"))

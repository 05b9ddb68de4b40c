"""Issue 20, the check: a deployment's CALM document compared with an intended architecture
(the client's). A structural difference is an error (the check fails), an objective the
configuration misses a warning (failing with ``strict``), the rest notes."""

from __future__ import annotations

import contextlib
import copy
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from commerce_core import InvalidInput
from commerce_core.calm import CheckReport, Deployment, check, describe
from commerce_core.calm import rate_per_second as rate
from commerce_core.retry import RetryPolicy

CLIENT = json.loads((Path(__file__).parents[1] / "data" / "calm" /
                     "ecommerce-platform.json").read_text())
PG = "postgresql+psycopg://shop:pw@{host}:{port}/{db}"


def deployed(orders: str = "sqlite:///var/orders.db",
             inventory: str = "sqlite:///var/inventory.db", **options: Any) -> dict[str, Any]:
    options.setdefault("payments_url", "sandbox://")
    options.setdefault("gateway_url", "http://127.0.0.1:8000/v1")
    options.setdefault("rate_limit", "100/second")
    return describe(Deployment(orders_url=orders, inventory_url=inventory, **options))


def texts(report: CheckReport, level: str) -> list[str]:
    return [str(finding) for finding in report.of(level)]  # type: ignore[arg-type]


def test_the_demo_realises_the_clients_structure_and_misses_its_objectives() -> None:
    report = check(CLIENT, deployed())
    assert report.errors == []
    assert not report.failed() and report.failed(strict=True)
    assert sorted(f.subject for f in report.warnings) == [
        "api-gateway", "inventory-database", "inventory-service-to-inventory-database",
        "order-database", "order-service-to-order-database", "order-service-to-payment-service"]
    assert "api-gateway: interface api-gateway-https is HTTPS in the architecture, and the " \
           "deployment serves HTTP (right only behind a proxy that terminates TLS)" in texts(
               report, "warning")
    assert any("latency objective 500 ms" in t and "10000 ms" in t
               for t in texts(report, "warning"))
    # the services the client drew with HTTP interfaces run in process: noted, not failed
    assert any(f.subject == "order-service" and "in-process library" in f.text
               for f in report.notes)
    assert report.render().splitlines()[-1].startswith("PASSED: 0 error(s), 6 warning(s)")
    assert report.render(strict=True).splitlines()[-1].startswith("FAILED")


def test_a_server_deployment_can_meet_every_objective() -> None:
    report = check(CLIENT, deployed(
        PG.format(host="orders-db", port=5432, db="orders") + "?pool_size=20",
        PG.format(host="inventory-db", port=5432, db="inventory") + "?pool_size=20",
        payment_retry=RetryPolicy(total=0.5), workers=4, gateway_url="https://0.0.0.0:443/v1",
        rate_limit_storage_url="redis://redis:6379/0"))
    assert report.errors == [] and report.warnings == []
    assert not report.failed(strict=True)


@pytest.mark.parametrize(("orders", "inventory", "where"), [
    ("sqlite:///var/shop.db", "sqlite:///var/shop.db", "shop.db"),
    ("sqlite:///var/shop.db", "sqlite:///./var/../var/shop.db", "shop.db"),
    (PG.format(host="localhost", port=5432, db="shop"),
     PG.format(host="127.0.0.1", port=5432, db="shop"), "localhost:5432/shop"),
    (PG.format(host="DB.example", port=5432, db="shop") + "?schema=orders",
     PG.format(host="db.example", port=5432, db="shop") + "?schema=inventory",
     "db.example:5432/shop"),
    ("mysql+pymysql://root@127.0.0.1/shop", "mariadb+pymysql://root@[::1]:3306/shop",
     "localhost:3306/shop"),
])
def test_both_stores_in_one_database_fail_the_clients_architecture(
        orders: str, inventory: str, where: str) -> None:
    report = check(CLIENT, deployed(orders, inventory))
    assert report.failed()
    [error] = report.errors
    assert error.subject == "order-database, inventory-database"
    assert "separate" in error.text and where in error.text


@pytest.mark.parametrize(("orders", "inventory"), [
    ("memory://", "memory://"),
    (PG.format(host="127.0.0.1", port=5432, db="orders"),
     PG.format(host="127.0.0.1", port=5432, db="inventory")),
    (PG.format(host="127.0.0.1", port=5432, db="shop"),
     PG.format(host="127.0.0.1", port=5433, db="shop")),
    (PG.format(host="127.0.0.1", port=5432, db="shop"), "sqlite:///var/shop.db"),
])
def test_separate_databases_pass(orders: str, inventory: str) -> None:
    assert check(CLIENT, deployed(orders, inventory)).errors == []


def _without(document: dict[str, Any], relationship: str) -> dict[str, Any]:
    changed = copy.deepcopy(document)
    changed["relationships"] = [r for r in changed["relationships"]
                                if r["unique-id"] != relationship]
    return changed


def test_every_structural_difference_is_an_error_naming_what() -> None:
    intended = copy.deepcopy(CLIENT)
    intended["nodes"].append({"unique-id": "shipping-service", "node-type": "service",
                              "name": "Shipping", "description": "labels"})
    intended["relationships"].append({
        "unique-id": "order-service-to-inventory-database", "description": "reaches in",
        "relationship-type": {"connects": {"source": {"node": "order-service"},
                                           "destination": {"node": "inventory-database"}}}})
    document = _without(deployed(), "customer-interacts-gateway")
    for node in document["nodes"]:
        if node["unique-id"] == "admin":
            node["node-type"] = "service"
    composition = next(r for r in document["relationships"]
                       if r["unique-id"] == "platform-composition")
    composition["relationship-type"]["composed-of"]["nodes"].remove("payment-service")
    errors = texts(check(intended, document), "error")
    assert len(errors) == 5, errors
    assert any(e.startswith("shipping-service: the architecture's service is not realised")
               for e in errors)
    assert any(e.startswith("admin: the architecture's actor is realised as a service")
               for e in errors)
    assert any(e.startswith("order-service-to-inventory-database: order-service connects to "
                            "inventory-database in the architecture, not in") for e in errors)
    assert any(e.startswith("customer-interacts-gateway:") for e in errors)
    assert any(e.startswith("platform-composition:") and "payment-service" in e
               for e in errors)


def test_a_connection_is_found_by_its_two_nodes_when_its_id_differs() -> None:
    document = deployed()
    for relationship in document["relationships"]:
        if relationship["unique-id"] == "gateway-to-order-service":
            relationship["unique-id"] = "routes-orders"
    assert check(CLIENT, document).errors == []
    # but an id that connects other nodes is not taken for it
    document = _without(deployed(), "order-service-to-payment-service")
    document["relationships"].append({
        "unique-id": "order-service-to-payment-service", "description": "wrong way round",
        "relationship-type": {"connects": {"source": {"node": "payment-service"},
                                           "destination": {"node": "order-service"}}}})
    assert [f.subject for f in check(CLIENT, document).errors] == [
        "order-service-to-payment-service"]


@pytest.mark.parametrize(("options", "expected"), [
    ({"rate_limit": "200/second"}, "rate-limit 100/second per principal intended, 200/second "
                                   "per principal configured (more requests let through)"),
    ({"rate_limit": "6000/minute"}, None),
    ({"rate_limit": "50 per second"}, "(fewer requests let through)"),
    ({"rate_limit": None}, "rate-limit 100/second per principal intended, none configured"),
    ({"workers": 4}, "each of the 4 workers counts on its own"),
    ({"workers": 4, "rate_limit_storage_url": "redis://127.0.0.1:6379/0"}, None),
])
def test_the_rate_limit_objective(options: dict[str, Any], expected: str | None) -> None:
    found = [t for t in texts(check(CLIENT, deployed(**options)), "warning")
             if t.startswith("api-gateway: rate-limit")]
    assert found == [] if expected is None else any(expected in t for t in found), found


def test_pool_size_retry_and_latency_objectives() -> None:
    server = PG.format(host="127.0.0.1", port=5432, db="{}")
    pools = texts(check(CLIENT, deployed(server.format("o") + "?pool_size=10",
                                         server.format("i"), pool_size=20)), "warning")
    assert "order-service-to-order-database: pool-size 20 intended, 10 connections per " \
           "process configured" in pools
    assert not any(t.startswith("inventory-service-to-inventory-database") for t in pools)
    intended = copy.deepcopy(CLIENT)
    payment = next(r for r in intended["relationships"]
                   if r["unique-id"] == "order-service-to-payment-service")
    payment["metadata"] = {"latency-sla-ms": "fast", "retry": {"attempts": 9},
                           "encryption": "AES"}
    report = check(intended, deployed(payment_retry=RetryPolicy(total=0.2)))
    on_payment = [t for t in texts(report, "warning")
                  if t.startswith("order-service-to-payment-service")]
    assert on_payment == ["order-service-to-payment-service: latency-sla-ms 'fast' is not a "
                          "number of ms",
                          "order-service-to-payment-service: retry attempts 9 intended, 4 "
                          "configured"]
    assert "order-service-to-payment-service: encryption 'AES': not checked" in texts(
        report, "note")
    payment["metadata"] = {"retry": "linear backoff"}
    assert any("retry 'linear backoff' intended, 'exponential backoff with jitter'" in t
               for t in texts(check(intended, deployed()), "warning"))


def test_rates_are_read_in_the_notations_used() -> None:
    assert rate("100/second per principal") == (100.0, "per principal")
    assert rate("20 per minute") == (20 / 60, "")
    assert rate("5/10 seconds") == (0.5, "")
    assert rate("fast") is None
    assert rate(None) is None  # type: ignore[arg-type]


@pytest.mark.parametrize(("document", "where"), [
    ([], "$"),
    ({"nodes": "all of them"}, "nodes"),
    ({"nodes": [{"unique-id": 1, "node-type": "service"}]}, "nodes[0]"),
    ({"nodes": [{"unique-id": "a", "node-type": "actor"}] * 2}, "nodes[1].unique-id"),
    ({"nodes": [], "relationships": {"a": 1}}, "relationships"),
    ({"nodes": [], "relationships": [{"unique-id": "r", "relationship-type": {}}]},
     "relationships[0].relationship-type"),
    ({"nodes": [], "relationships": [{"unique-id": "r", "relationship-type": {
        "connects": {"source": "a", "destination": {"node": "b"}}}}]},
     "relationships[0].relationship-type.connects"),
    ({"nodes": [], "relationships": [{"unique-id": "r", "relationship-type": {
        "interacts": {"actor": "a", "nodes": [1]}}}]},
     "relationships[0].relationship-type.interacts"),
])
def test_a_document_it_cannot_read_is_invalid_input_saying_where(
        document: Any, where: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        check(document, deployed())
    assert where in [error.path for error in raised.value.errors]
    assert "the intended architecture" in str(raised.value)


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True)
                    | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=30)
KEYS = st.sampled_from(["unique-id", "node-type", "nodes", "relationships", "interfaces",
                        "metadata", "relationship-type", "connects", "interacts",
                        "composed-of", "source", "destination", "node", "host", "port",
                        "path", "database", "rate-limit", "pool-size", "retry",
                        "latency-sla-ms", "engine", "actor", "container"])
CALMISH = st.recursive(st.none() | st.integers() | st.text(max_size=6) | KEYS,
                       lambda inner: st.lists(inner, max_size=4)
                       | st.dictionaries(KEYS, inner, max_size=5), max_leaves=40)


@given(st.one_of(JSON, CALMISH))
def test_hostile_documents_are_refused_or_checked_never_crash(document: Any) -> None:
    for intended, actual in ((document, deployed()), (CLIENT, document)):
        try:
            report = check(intended, actual)
        except InvalidInput:
            continue
        report.render()


@given(st.sampled_from(CLIENT["nodes"] + CLIENT["relationships"]), CALMISH, st.booleans())
def test_a_client_document_with_one_part_mangled_never_crashes(
        part: Any, junk: Any, metadata_only: bool) -> None:
    document = copy.deepcopy(CLIENT)
    for section in ("nodes", "relationships"):
        document[section] = [({**item, "metadata": junk} if metadata_only else junk)
                             if item == part else item for item in document[section]]
    with contextlib.suppress(InvalidInput):
        check(document, deployed()).render()


# found by the outside review ------------------------------------------------------------

@pytest.mark.parametrize(("orders", "inventory"), [
    # SQLAlchemy decodes the database name, and libpq's own parameters win over the URL's
    (PG.format(host="127.0.0.1", port=5432, db="shop"),
     PG.format(host="127.0.0.1", port=5432, db="%73hop")),
    (PG.format(host="127.0.0.1", port=5432, db="shop"),
     PG.format(host="127.0.0.1", port=5432, db="other") + "?dbname=shop"),
    (PG.format(host="10.0.0.9", port=5432, db="shop"),
     PG.format(host="127.0.0.1", port=5432, db="shop") + "?host=10.0.0.9"),
    # the local server, over its Unix socket or by an address written otherwise
    ("postgresql+psycopg://postgres@/shop?host=/var/run/postgresql",
     "postgresql+psycopg://postgres@/shop?host=/var/run/postgresql"),
    ("postgresql+psycopg://postgres@/shop", PG.format(host="127.0.0.1", port=5432, db="shop")),
    (PG.format(host="0.0.0.0", port=5432, db="shop"),  # noqa: S104
     PG.format(host="[::ffff:127.0.0.1]", port=5432, db="shop")),
    (PG.format(host="127.000.000.001", port=5432, db="shop"),
     PG.format(host="localhost.", port=5432, db="shop")),
    # one SQLite file, written three ways
    ("sqlite:///var/a%20b.db", "sqlite:///var/a b.db"),
    ("sqlite:///var/y.db", "sqlite:///file:var/y.db?uri=true"),
])
def test_one_database_written_two_ways_is_one_database(orders: str, inventory: str) -> None:
    assert [f.subject for f in check(CLIENT, deployed(orders, inventory)).errors] == [
        "order-database, inventory-database"]


def test_a_password_with_a_slash_neither_leaks_nor_changes_the_database() -> None:
    """SQLAlchemy reads a password up to the last ``@``: so does the description."""
    for password in ("s3cr/etPW", "a#b?c", "p%40ss"):
        url = f"postgresql+psycopg://shop:{password}@127.0.0.1:5432/orders"
        document = deployed(url, "sqlite:///var/i.db")
        node = next(n for n in document["nodes"] if n["unique-id"] == "order-database")
        assert node["interfaces"][0] == {"unique-id": "order-database-sql",
                                         "protocol": "POSTGRESQL", "host": "127.0.0.1",
                                         "port": 5432, "database": "orders"}
        assert password not in json.dumps(document) and "shop" not in json.dumps(node)


def test_two_sqlite_files_that_differ_by_a_hash_are_two() -> None:
    assert check(CLIENT, deployed("sqlite:///var/x.db", "sqlite:///var/x.db#2")).errors == []


def test_a_retry_without_a_total_is_a_warning_not_a_crash() -> None:
    document = deployed()
    payment = next(r for r in document["relationships"]
                   if r["unique-id"] == "order-service-to-payment-service")
    payment["metadata"]["retry"] = {"attempts": 3}
    assert "order-service-to-payment-service: latency objective 500 ms, but its retries " \
           "have no total time that bounds them" in texts(check(CLIENT, document), "warning")


def test_no_id_in_a_document_can_forge_a_line_of_the_report() -> None:
    intended = copy.deepcopy(CLIENT)
    intended["nodes"].append({"unique-id": "cache\n\nPASSED: 0 error(s)\n\x1b[8m",
                              "node-type": "database", "name": "c", "description": "c",
                              "metadata": {"note": "x" * 10_000}})
    rendered = check(intended, deployed()).render()
    assert "\x1b" not in rendered and "\nPASSED" not in rendered
    assert "cache\\n\\nPASSED" in rendered
    assert max(len(line) for line in rendered.splitlines()) < 400

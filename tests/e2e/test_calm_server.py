"""Issue 20 through ``commerce-server``: ``calm --check FILE [--strict]`` compares the
configured deployment with an intended architecture (exit 0, 1 when it does not realise
it, 2 when the file is not a CALM architecture), and ``--architecture FILE`` runs the
server from one: on PostgreSQL and MariaDB with Redis and RabbitMQ, served over HTTP and
HTTPS, refused with a clear message when it cannot be realised."""

from __future__ import annotations

import json
import os
import shutil
import ssl
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from commerce_server import cli
from commerce_server.architecture import schema_errors
from tests.conftest import require, server_urls
from tests.e2e.conftest import KEYS, SERVER, free_port

CLIENT = Path(__file__).parents[1] / "data" / "calm" / "ecommerce-platform.json"
#: every variable the server reads that a test here sets, or that --architecture sets
VARIABLES = ("COMMERCE_ORDERS_URL", "COMMERCE_INVENTORY_URL", "COMMERCE_PAYMENTS_URL",
             "COMMERCE_RATE_LIMITS_URL", "COMMERCE_EVENTS_URL", "COMMERCE_RATE_LIMIT",
             "COMMERCE_ORDERS_DB_USER", "COMMERCE_ORDERS_DB_PASSWORD",
             "COMMERCE_INVENTORY_DB_USER", "COMMERCE_INVENTORY_DB_PASSWORD",
             "COMMERCE_EVENTS_USER", "COMMERCE_EVENTS_PASSWORD", "COMMERCE_RATE_LIMITS_USER",
             "COMMERCE_RATE_LIMITS_PASSWORD", "COMMERCE_TLS_CERTFILE", "COMMERCE_TLS_KEYFILE",
             "COMMERCE_PAYMENT_RETRY_TOTAL")


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, str]:
    """A clean server environment in ``tmp_path``; whatever the server writes into
    ``os.environ`` (``--architecture`` does) is taken back after the test."""
    monkeypatch.chdir(tmp_path)
    for name in VARIABLES:
        monkeypatch.setenv(name, "")
    monkeypatch.setenv("COMMERCE_API_KEYS", KEYS)
    monkeypatch.setenv("COMMERCE_PAYMENTS_URL", f"sandbox:///{tmp_path}/pay.db")
    return os.environ  # type: ignore[return-value]


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = cli.main(list(args))
    out, err = capsys.readouterr()
    return status, out, err


def test_the_default_configuration_realises_the_clients_architecture(
        env: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "calm", "--check", str(CLIENT))
    assert status == 0, out
    assert "PASSED: 0 error(s), 6 warning(s)" in out
    assert "order-service-to-payment-service: latency objective 500 ms" in out
    status, out, _ = run(capsys, "calm", "--check", str(CLIENT), "--strict")
    assert status == 1
    assert out.splitlines()[-1].startswith("FAILED: 0 error(s), 6 warning(s)")
    # the objectives the server can be set to meet: the payment retries within 500 ms
    env["COMMERCE_PAYMENT_RETRY_TOTAL"] = "0.5"
    assert "latency objective" not in run(capsys, "calm", "--check", str(CLIENT))[1]


def test_both_stores_in_one_database_fail_the_clients_architecture(
        env: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    env["COMMERCE_ORDERS_URL"] = "postgresql+psycopg://shop:pw@db.internal:5432/shop"
    env["COMMERCE_INVENTORY_URL"] = "postgresql+psycopg://shop:pw@DB.internal/shop"
    status, out, _ = run(capsys, "calm", "--check", str(CLIENT))
    assert status == 1
    assert ("  - order-database, inventory-database: the architecture keeps these databases "
            "separate, but the deployment puts them in one: db.internal:5432/shop") in out
    assert "FAILED: 1 error(s)" in out and "pw" not in out


@pytest.mark.parametrize(("content", "says"), [
    (None, "No such file"),
    (b"{\"nodes\": [", "is not JSON"),
    (b"\xff\xfe\x00garbage", "is not JSON"),
    (b"[1, 2]", "is not a CALM architecture"),
    (b"[" * 100_000 + b"]" * 100_000, "is not JSON"),
    (json.dumps({"nodes": [{"unique-id": "x", "node-type": 7}]}).encode(),
     "is not a valid CALM 1.1 architecture"),
])
def test_a_file_that_is_not_a_calm_architecture_is_refused_with_exit_2(
        env: dict[str, str], capsys: pytest.CaptureFixture[str], tmp_path: Path,
        content: bytes | None, says: str) -> None:
    path = tmp_path / "intended.json"
    if content is not None:
        path.write_bytes(content)
    for args in (["calm", "--check", str(path)], ["--architecture", str(path), "migrate"]):
        status, out, err = run(capsys, *args)
        assert status == 2, (out, err)
        assert says in err.splitlines()[0] and "Traceback" not in err
    assert not (tmp_path / "var").exists()  # nothing was opened


def test_schema_errors_say_where(env: dict[str, str], capsys: pytest.CaptureFixture[str],
                                 tmp_path: Path) -> None:
    document = json.loads(CLIENT.read_text())
    document["nodes"][2]["node-type"] = 7
    del document["relationships"][0]["relationship-type"]
    (tmp_path / "a.json").write_text(json.dumps(document))
    status, _, err = run(capsys, "calm", "--check", str(tmp_path / "a.json"))
    assert status == 2
    assert "  nodes[2].node-type: " in err and "  relationships[0]: " in err


def test_an_architecture_that_names_what_the_deployment_lacks_fails_it(
        env: dict[str, str], capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    document = json.loads(CLIENT.read_text())
    document["nodes"].append({"unique-id": "search-service", "node-type": "service",
                              "name": "Search", "description": "full-text search"})
    (tmp_path / "a.json").write_text(json.dumps(document))
    status, out, _ = run(capsys, "calm", "--check", str(tmp_path / "a.json"))
    assert status == 1
    assert "  - search-service: the architecture's service is not realised" in out


@pytest.mark.parametrize("args", [["--strict"], ["calm", "--strict"],
                                  ["migrate", "--check", str(CLIENT)]])
def test_check_options_are_for_calm_only(env: dict[str, str],
                                         capsys: pytest.CaptureFixture[str],
                                         args: list[str]) -> None:
    assert run(capsys, *args)[0] == 2


def _tables(url: str) -> set[str]:
    engine = sa.create_engine(url)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


@pytest.mark.parametrize("backend", ["postgresql", "mariadb"])
def test_the_server_runs_from_the_architecture_it_describes(
        env: dict[str, str], capsys: pytest.CaptureFixture[str], tmp_path: Path,
        backend: str) -> None:
    """PostgreSQL or MariaDB for both stores, Redis for the rate limits, RabbitMQ for the
    events, two workers: ``calm`` writes it down; from that file alone (and the passwords in
    the environment) the server migrates the very databases it names, and describes itself
    as the same document."""
    for server in (backend, "redis", "rabbitmq"):
        require(server)
    orders, inventory = server_urls(backend, tmp_path)
    env.update(COMMERCE_ORDERS_URL=orders + "?pool_size=3", COMMERCE_INVENTORY_URL=inventory,
               COMMERCE_RATE_LIMITS_URL="redis://127.0.0.1:6379/3",
               COMMERCE_EVENTS_URL="amqp://guest:guest@127.0.0.1:5672/%2F")
    status, document, _ = run(capsys, "calm", "--workers", "2", "--port", "8099")
    assert status == 0
    assert schema_errors(json.loads(document)) == []
    (tmp_path / "shop.json").write_text(document)
    for name in ("COMMERCE_ORDERS_URL", "COMMERCE_INVENTORY_URL", "COMMERCE_RATE_LIMITS_URL",
                 "COMMERCE_EVENTS_URL"):
        env[name] = ""
    user = "postgres" if backend == "postgresql" else "root"
    env.update(COMMERCE_ORDERS_DB_USER=user, COMMERCE_INVENTORY_DB_USER=user,
               COMMERCE_EVENTS_USER="guest", COMMERCE_EVENTS_PASSWORD="guest")
    assert _tables(orders) == set() == _tables(inventory)
    status, out, err = run(capsys, "--architecture", "shop.json", "migrate")
    assert status == 0, err
    assert "orders" in _tables(orders) and "stock_levels" in _tables(inventory)
    assert "orders" not in _tables(inventory)
    assert env["COMMERCE_ORDERS_URL"] == ""  # only serving puts it in the environment
    connection = next(r for r in json.loads(document)["relationships"]
                      if r["unique-id"] == "order-service-to-order-database")
    assert connection["metadata"]["pool-size"] == 3
    status, again, _ = run(capsys, "--architecture", "shop.json", "calm")
    assert status == 0 and json.loads(again) == json.loads(document)
    status, out, _ = run(capsys, "--architecture", "shop.json", "calm", "--check",
                         "shop.json", "--strict")
    assert status == 0, out


def _architecture(tmp_path: Path, *, protocol: str = "HTTP", port: int = 8000,
                  same_file: bool = False) -> Path:
    document = json.loads(CLIENT.read_text())
    nodes = {n["unique-id"]: n for n in document["nodes"]}
    nodes["api-gateway"]["interfaces"] = [{"unique-id": "api-gateway-web",
                                           "protocol": protocol, "host": "127.0.0.1",
                                           "port": port, "path": "/v1"}]
    for store in ("order", "inventory"):
        nodes[f"{store}-database"]["interfaces"] = [{
            "unique-id": f"{store}-database-jdbc", "protocol": "SQLITE",
            "path": f"{tmp_path}/{'shop' if same_file else store}.db"}]
        nodes[f"{store}-database"]["metadata"] = {"engine": "SQLite"}
    path = tmp_path / f"{protocol.lower()}-{port}-{same_file}.json"
    path.write_text(json.dumps(document))
    return path


def test_an_architecture_it_cannot_realise_is_refused_clearly(
        env: dict[str, str], capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    status, _, err = run(capsys, "--architecture", str(_architecture(tmp_path,
                                                                     same_file=True)), "migrate")
    assert status == 2
    assert "cannot run from" in err and "the server would not realise it" in err
    assert "order-database, inventory-database: the architecture keeps these databases " \
           "separate" in err
    assert not (tmp_path / "shop.db").exists()
    path = str(_architecture(tmp_path, protocol="HTTPS", port=8443))
    status, _, err = run(capsys, "--architecture", path)
    assert status == 2 and "HTTPS; set COMMERCE_TLS_CERTFILE and COMMERCE_TLS_KEYFILE" in err
    status, _, err = run(capsys, "--architecture", path, "--port", "9000", "migrate")
    assert status == 2 and "--port 9000 and the architecture's 8443 disagree" in err
    env["COMMERCE_ORDERS_URL"] = "sqlite:///elsewhere.db"
    status, _, err = run(capsys, "--architecture", path, "migrate")
    assert status == 2
    assert "COMMERCE_ORDERS_URL: is set and the architecture says otherwise" in err
    document = json.loads(CLIENT.read_text())
    document["nodes"][6]["metadata"]["engine"] = "Oracle 19c"
    (tmp_path / "oracle.json").write_text(json.dumps(document))
    status, _, err = run(capsys, "--architecture", str(tmp_path / "oracle.json"), "migrate")
    assert status == 2 and "the architecture cannot be realised" in err
    assert "  nodes.order-database.interfaces.order-database-jdbc: a 'JDBC' database of " \
           "engine 'oracle 19c' is not one the stores serve" in err


def _serving(args: list[str], url: str, env: dict[str, Any], cwd: Path,
             verify: ssl.SSLContext) -> subprocess.Popen[bytes]:
    with (cwd / "server.log").open("wb") as log:  # the child keeps its own descriptor
        process = subprocess.Popen([SERVER, *args], cwd=cwd, env={**os.environ, **env},
                                   stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(f"{url}/healthz", timeout=1, verify=verify).status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    process.wait()
    raise AssertionError((cwd / "server.log").read_text())


@pytest.mark.parametrize("protocol", ["HTTP", "HTTPS"])
def test_the_server_serves_where_the_architecture_says(tmp_path: Path, protocol: str) -> None:
    """The gateway's interface (protocol, address, port) taken from the architecture, over
    HTTPS with the certificate and key from the environment; the stores where it says."""
    port = free_port()
    extra: dict[str, str] = {}
    verify = ssl.create_default_context()
    if protocol == "HTTPS":
        openssl = shutil.which("openssl")
        assert openssl is not None, "the machine has no openssl"
        subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                        "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                        "-keyout", str(tmp_path / "key.pem"), "-out",
                        str(tmp_path / "cert.pem")], check=True, capture_output=True)
        extra = {"COMMERCE_TLS_CERTFILE": str(tmp_path / "cert.pem"),
                 "COMMERCE_TLS_KEYFILE": str(tmp_path / "key.pem")}
        verify = ssl.create_default_context(cafile=str(tmp_path / "cert.pem"))
    url = f"{protocol.lower()}://127.0.0.1:{port}"
    path = _architecture(tmp_path, protocol=protocol, port=port)
    environment = {**dict.fromkeys(VARIABLES, ""), "COMMERCE_API_KEYS": KEYS, **extra}
    process = _serving(["--architecture", str(path), "--demo"], url, environment, tmp_path,
                       verify)
    try:
        products = httpx.get(f"{url}/v1/products", verify=verify)
        assert products.status_code == 200 and products.json()["items"]
    finally:
        process.terminate()
        process.wait(timeout=20)
    assert (tmp_path / "order.db").exists() and (tmp_path / "inventory.db").exists()
    assert not (tmp_path / "var" / "orders.db").exists()  # not the default stores
    if protocol == "HTTPS":
        with pytest.raises(httpx.TransportError):
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)


DOCS = Path(__file__).parents[2] / "docs" / "snippets"


def test_the_documents_the_docs_show_are_what_the_server_prints(
        env: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    """docs/architecture-as-code.md shows the demo's document and a failed check: they are
    the server's output, byte for byte (regenerate them with the commands the page shows
    when the description changes)."""
    env["COMMERCE_PAYMENTS_URL"] = ""  # the demo's own
    status, out, _ = run(capsys, "--demo", "calm")
    assert status == 0
    assert out == (DOCS / "calm-demo.json").read_text()
    assert schema_errors(json.loads(out)) == []
    env.update(COMMERCE_ORDERS_URL="postgresql+psycopg://shop@db.internal:5432/shop",
               COMMERCE_INVENTORY_URL="postgresql+psycopg://shop@db.internal:5432/shop"
                                      "?schema=inventory")
    status, out, _ = run(capsys, "--demo", "calm", "--check", str(CLIENT))
    assert status == 1
    assert out == (DOCS / "calm-failed-check.txt").read_text()


@pytest.mark.parametrize(("args", "variables", "says"), [
    (["calm", "--port", "99999"], {}, "--port must be from 1 to 65535"),
    (["calm", "--workers", "0"], {}, "--workers must be from 1 to 64"),
])
def test_a_port_or_worker_count_out_of_range_is_refused(
        env: dict[str, str], capsys: pytest.CaptureFixture[str], args: list[str],
        variables: dict[str, str], says: str) -> None:
    env.update(variables)
    status, _, err = run(capsys, *args)
    assert status == 2 and says in err


def test_odd_hosts_and_urls_are_described_without_a_traceback(
        env: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "calm", "--host", "[::1]")
    assert status == 0
    gateway = next(n for n in json.loads(out)["nodes"] if n["unique-id"] == "api-gateway")
    assert gateway["interfaces"][0]["host"] == "::1"
    env["COMMERCE_ORDERS_URL"] = "postgresql+psycopg://[::1/orders"
    status, out, _ = run(capsys, "calm")
    assert status == 0 and json.loads(out)


def test_a_run_from_an_architecture_leaves_the_environment_as_it_was(
        env: dict[str, str], capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """Only serving puts the architecture's URLs into the environment (for the workers):
    a host calling main twice in one process gets each run's own settings."""
    for name in ("one", "two"):
        (tmp_path / name).mkdir()
    first, second = (_architecture(tmp_path / name, port=8000 + n)
                     for n, name in enumerate(("one", "two")))
    assert run(capsys, "--architecture", str(first), "migrate")[0] == 0
    assert env["COMMERCE_ORDERS_URL"] == ""
    assert run(capsys, "--architecture", str(second), "migrate")[0] == 0
    assert (tmp_path / "one" / "order.db").exists() and (tmp_path / "two" / "order.db").exists()

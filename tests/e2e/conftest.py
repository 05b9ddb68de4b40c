"""Start the real ``commerce-server`` as a subprocess on a free port, on SQLite files."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from starlette.types import ASGIApp

SERVER = str(Path(sys.executable).with_name("commerce-server"))
# at least 24 characters: the server refuses shorter keys outside --demo
ADMIN_KEY, ALICE_KEY, BOB_KEY = (f"e2e-{who}-key-for-the-tests" for who in ("admin", "alice",
                                                                            "bob"))
KEYS = f"{ADMIN_KEY}=admin,{ALICE_KEY}=customer:alice,{BOB_KEY}=customer:bob"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """A running server, its base URL and what it printed."""

    def __init__(self, folder: Path, env: dict[str, str], *args: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = folder / "server.log"
        self._log_file = self.log.open("w")
        self.process = subprocess.Popen(
            [SERVER, "--port", str(self.port), *args], cwd=folder,
            env={**os.environ, **env}, stdout=self._log_file, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self._log_file.close()  # not left for a later test's warnings to find
                raise RuntimeError(f"the server exited:\n{self.log.read_text()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"the server did not come up:\n{self.log.read_text()}")

    def output(self) -> str:
        return self.log.read_text()

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log_file.close()


def sqlite_env(folder: Path) -> dict[str, str]:
    return {"COMMERCE_ORDERS_URL": f"sqlite:///{folder}/orders.db",
            "COMMERCE_INVENTORY_URL": f"sqlite:///{folder}/inventory.db",
            "COMMERCE_PAYMENTS_URL": "sandbox://", "COMMERCE_API_KEYS": KEYS}


def app_from_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **env: str) -> ASGIApp:
    """The reference server's app in this process, as ``commerce-server`` builds it from the
    environment (SQLite files in ``tmp_path`` and ``env``), its metrics this process's own."""
    from commerce_server.asgi import create_app  # noqa: PLC0415 - not every test needs it

    for name, value in {**sqlite_env(tmp_path), **env}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    return create_app()


@contextlib.asynccontextmanager
async def client_of(app: ASGIApp, peer: tuple[str, int] = ("127.0.0.1", 5000),
                    ) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of an app in this process, its requests coming from ``peer``."""
    transport = httpx.ASGITransport(app=app, client=peer)
    async with httpx.AsyncClient(transport=transport, base_url="http://shop") as http:
        yield http


async def stock_a_mug(http: httpx.AsyncClient, units: int = 5) -> None:
    """Warehouse BER, product MUG-01 at 12.50 EUR and ``units`` of it, as the admin."""
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    await http.put("/v1/warehouses/BER", headers=admin, json={"name": "Berlin"})
    await http.put("/v1/products/MUG-01", headers=admin, json={
        "name": "Mug", "price": {"amount": 1250, "currency": "EUR"}})
    stocked = await http.post("/v1/inventory/MUG-01/adjustments",
                              headers={**admin, "Idempotency-Key": f"stock-{units}"},
                              json={"warehouse": "BER", "delta": units, "reason": "stock"})
    assert stocked.status_code == 201, stocked.text


def metered_server(tmp_path: Path) -> tuple[Server, Path]:
    """The demo server on 2 workers writing their metrics in a folder of ``tmp_path``, with
    sandbox payments in a file (shared by the workers); the server and the folder."""
    folder = tmp_path / "metrics"
    folder.mkdir()
    env = {**sqlite_env(tmp_path), "COMMERCE_PAYMENTS_URL": f"sandbox:///{tmp_path}/pay.db",
           "PROMETHEUS_MULTIPROC_DIR": str(folder)}
    return Server(tmp_path, env, "--workers", "2", "--demo"), folder


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("server")
    running = Server(folder, sqlite_env(folder), "--demo")
    yield running
    running.stop()

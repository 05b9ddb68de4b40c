"""Start the real ``commerce-server`` as a subprocess on a free port, on SQLite files."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

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


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("server")
    running = Server(folder, sqlite_env(folder), "--demo")
    yield running
    running.stop()

"""Over HTTP: the reference server (uvicorn) on PostgreSQL, loaded from a separate process."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from bench.common import ROOT, VAR

BUYERS = 64  # customers, one API key each
#: Requests per worker at once (COMMERCE_THREADS): 4 is the fastest with the sandbox's instant
#: payments (docs/performance.md has 40, the server's default, beside it)
THREADS = 4


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def api_keys(count: int = BUYERS) -> tuple[str, list[str]]:
    """``COMMERCE_API_KEYS`` for ``count`` customers, and their keys."""
    keys = [f"buyer{n}_{secrets.token_urlsafe(24)}" for n in range(count)]
    return ",".join(f"{k}=customer:cust-{n:05d}" for n, k in enumerate(keys)), keys


@contextmanager
def server(orders_url: str, inventory_url: str, *, workers: int,
           keys: str) -> Iterator[str]:
    """``commerce-server --workers N`` on these stores; yields its base URL."""
    port = _free_port()
    server_bin = Path(sys.executable).with_name("commerce-server")
    command = [str(server_bin) if server_bin.exists() else shutil.which("commerce-server")
               or "commerce-server", "serve", "--port", str(port), "--workers", str(workers)]
    env = {**os.environ, "COMMERCE_ORDERS_URL": orders_url,
           "COMMERCE_INVENTORY_URL": inventory_url, "COMMERCE_PAYMENTS_URL": "sandbox://",
           "COMMERCE_API_KEYS": keys, "COMMERCE_RATE_LIMITS_URL": "memory://",
           "COMMERCE_RATE_LIMIT": "1000000/second",
           "COMMERCE_CHECKOUT_RATE_LIMIT": "1000000/second", "COMMERCE_THREADS": str(THREADS)}
    VAR.mkdir(parents=True, exist_ok=True)
    log = (VAR / f"server-{port}.log").open("w")
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT,
                               cwd=ROOT.parent)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the server exited: see {log.name}")
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server did not start: see {log.name}")
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def load(url: str, keys: list[str], *, concurrency: int, orders: int,
         hot: str | None = None, seed: int = 5) -> dict[str, Any]:
    """Run the load generator in its own process and return what it measured."""
    command = [sys.executable, "-m", "bench.load", url, "--keys", ",".join(keys),
               "--concurrency", str(concurrency), "--orders", str(orders), "--seed", str(seed)]
    if hot is not None:
        command += ["--hot", hot]
    done = subprocess.run(command, capture_output=True, text=True, check=True,
                          cwd=ROOT.parent)
    if done.stderr.strip():  # what failed, request by request
        print(done.stderr.strip(), file=sys.stderr)
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]

"""The answers the HTTP protocol gives by itself, before the app: a client that stops
reading is dropped, idle connections give way near the bound, and a malformed request or
one over the bound gets a problem like every other answer."""

from __future__ import annotations

import json
import signal
import socket
import time
from pathlib import Path

import httpx

from tests.e2e.conftest import Server, sqlite_env


def _headers_and_body(raw: bytes) -> tuple[str, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    status, *lines = head.decode().split("\r\n")
    fields = (line.partition(":") for line in lines)
    return status, {name.lower(): value.strip() for name, _, value in fields}, body


def _read_all(sock: socket.socket) -> bytes:
    sock.settimeout(5)
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    return received


def test_a_client_that_stops_reading_is_dropped_and_shutdown_does_not_wait_for_it(
    tmp_path: Path,
) -> None:
    server = Server(tmp_path, {**sqlite_env(tmp_path), "COMMERCE_SEND_TIMEOUT": "1"}, "--demo")
    sock = socket.create_connection(("127.0.0.1", server.port))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.sendall(b"GET /openapi.json HTTP/1.1\r\nHost: x\r\n\r\n" * 300)  # and never read
    try:
        deadline = time.monotonic() + 20
        while "stopped reading its response; dropped" not in server.output():
            assert time.monotonic() < deadline, "the connection was never dropped"
            time.sleep(0.2)
        server.process.send_signal(signal.SIGTERM)
        server.process.wait(timeout=45)  # it stops: nothing is left holding it
    finally:
        sock.close()
        server.stop()


def test_idle_connections_give_way_near_the_bound(tmp_path: Path) -> None:
    server = Server(tmp_path, {**sqlite_env(tmp_path), "COMMERCE_MAX_CONNECTIONS": "10"},
                    "--demo")
    idle = []
    try:
        for _ in range(10):  # one request each, then silence: keep-alive slots held
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            sock.recv(4096)
            idle.append(sock)
        answer = httpx.get(f"{server.url}/v1/products", timeout=5)
        assert answer.status_code == 200
    finally:
        for sock in idle:
            sock.close()
        server.stop()


def test_the_protocols_own_answers_are_problems_with_the_usual_headers(tmp_path: Path) -> None:
    server = Server(tmp_path, {**sqlite_env(tmp_path), "COMMERCE_MAX_CONNECTIONS": "2",
                               "COMMERCE_HEADER_TIMEOUT": "30"}, "--demo")
    held = []
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
            sock.sendall(b"NOT HTTP AT ALL\r\n\r\n")
            status, headers, body = _headers_and_body(_read_all(sock))
        assert status.startswith("HTTP/1.1 400")
        assert headers["content-type"] == "application/problem+json"
        assert headers["x-content-type-options"] == "nosniff" and headers["x-request-id"]
        assert json.loads(body)["type"] == "/problems/malformed-request"
        for _ in range(2):  # the bound: two connections, sending a request they never finish
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
            sock.sendall(b"GET /v1/products HTTP/1.1\r\nHost: x\r\n")
            held.append(sock)
        time.sleep(0.2)
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
            status, headers, body = _headers_and_body(_read_all(sock))
        assert status.startswith("HTTP/1.1 503")
        assert headers["retry-after"] and headers["x-content-type-options"] == "nosniff"
        assert json.loads(body)["type"] == "/problems/too-many-connections"
    finally:
        for sock in held:
            sock.close()
        server.stop()

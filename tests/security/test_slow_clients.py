"""OWASP API4: slow clients cannot hold the server. Who calls is known before the body is
read; headers and bodies that arrive too slowly are answered 408 and dropped; a worker takes
a bounded number of connections; and other clients are answered meanwhile."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import ADMIN_KEY, Server, sqlite_env

SLOW = {"COMMERCE_BODY_TIMEOUT": "1", "COMMERCE_HEADER_TIMEOUT": "1"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("slow")
    running = Server(folder, {**sqlite_env(folder), **SLOW, "COMMERCE_MAX_CONNECTIONS": "40"},
                     "--demo")
    yield running
    running.stop()


def _connect(server: Server) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=10)


def _answer(sock: socket.socket) -> bytes:
    received = b""
    try:
        while chunk := sock.recv(4096):
            received += chunk
            if b"\r\n\r\n" in received and received.startswith(b"HTTP/1.1 4"):
                break
    except TimeoutError:
        pass
    return received


def test_an_anonymous_request_is_refused_before_its_body_is_waited_for(server: Server) -> None:
    with _connect(server) as sock:
        sock.sendall(b"POST /v1/orders HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
                     b"\r\nContent-Length: 60000\r\n\r\n{")  # and nothing more
        sock.settimeout(3)
        assert _answer(sock).startswith(b"HTTP/1.1 401")


def test_a_body_sent_a_byte_at_a_time_is_cut_off_with_408(server: Server) -> None:
    with _connect(server) as sock:
        sock.sendall(b"PUT /v1/warehouses/SLOW HTTP/1.1\r\nHost: x\r\n"
                     b"Authorization: Bearer " + ADMIN_KEY.encode()
                     + b"\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n")
        answer = b""
        sock.settimeout(0.3)
        for _ in range(20):  # six seconds of a byte every 0.3 s, at most
            try:
                sock.sendall(b" ")
                answer += sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                break
            if answer:
                break
        assert answer.startswith(b"HTTP/1.1 408"), answer


def test_headers_sent_a_byte_at_a_time_are_cut_off_with_408(server: Server) -> None:
    with _connect(server) as sock:
        sock.settimeout(0.3)
        request = b"GET /v1/products HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100
        answer = b""
        for byte in request:
            try:
                sock.sendall(bytes([byte]))
                answer += sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                break
            if answer:
                break
        assert answer.startswith(b"HTTP/1.1 408"), answer


def test_other_clients_are_answered_while_slow_ones_hang_on(server: Server) -> None:
    hanging = []
    for n in range(30):  # half send headers that never end, half bodies that never come
        sock = _connect(server)
        sock.sendall(b"GET /v1/products HTTP/1.1\r\nHost: x\r\n" if n % 2 else
                     b"PUT /v1/warehouses/X HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                     + ADMIN_KEY.encode() + b"\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 100\r\n\r\n{")
        hanging.append(sock)
    try:  # each answered within the client's own 5 s, not stuck behind the slow ones
        answered = [httpx.get(f"{server.url}/v1/products", timeout=5).status_code
                    for _ in range(5)]
        assert answered == [200] * 5
    finally:
        for sock in hanging:
            sock.close()


def test_connections_beyond_the_bound_are_answered_503_at_once(tmp_path: Path) -> None:
    bounded = Server(tmp_path, {**sqlite_env(tmp_path), **SLOW,
                                "COMMERCE_HEADER_TIMEOUT": "30",
                                "COMMERCE_MAX_CONNECTIONS": "3"}, "--demo")
    socks = []
    try:
        for _ in range(3):
            sock = _connect(bounded)
            sock.sendall(b"GET /v1/products HTTP/1.1\r\nHost: x\r\n")  # never finished
            socks.append(sock)
        time.sleep(0.2)
        answer = httpx.get(f"{bounded.url}/v1/products", timeout=5)
        assert answer.status_code == 503
    finally:
        for sock in socks:
            sock.close()
        bounded.stop()

"""A real HTTP receiver of outbound webhooks for the tests: it checks every request's
signature as a receiver would (`commerce_core.webhooks.verify`), keeps what it got, and can
be told to fail (answer 500), to be down (its socket closed), or to redirect."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from commerce_core.errors import InvalidSignature
from commerce_core.webhooks import SIGNATURE_HEADER, verify


class Receiver:
    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.lock = threading.Lock()
        #: the bodies that verified and were answered 2xx, in arrival order
        self.received: list[dict[str, Any]] = []
        #: every request: (path, status answered)
        self.requests: list[tuple[str, int]] = []
        #: the headers of the requests that verified, by event id (the last attempt's)
        self.headers: dict[str, dict[str, str]] = {}
        self.bad_signatures = 0
        self.answer = 204  # what to answer a request that verifies
        self.server: ThreadingHTTPServer | None = None
        self.port = 0
        self.redirect_to: str | None = None
        self.delay = 0.0  # seconds before answering
        #: called (once) at the first request, before it is answered
        self.on_request: Callable[[], None] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    def ids(self) -> list[str]:
        with self.lock:
            return [body["id"] for body in self.received]

    def wait_for(self, count: int, timeout: float = 20.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len({b["id"] for b in self.received}) >= count:
                    return list(self.received)
            time.sleep(0.02)
        with self.lock:
            raise AssertionError(f"{len(self.received)} of {count} events arrived: "
                                 f"{[b['type'] for b in self.received]}")

    def wait_for_types(self, types: set[str], timeout: float = 20.0) -> list[dict[str, Any]]:
        """Wait until events of every one of ``types`` arrived (the relays of the two stores
        deliver in no order between them), and answer all that arrived."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if types <= {b["type"] for b in self.received}:
                    return list(self.received)
            time.sleep(0.02)
        with self.lock:
            raise AssertionError(f"waited for {sorted(types)}, arrived: "
                                 f"{[b['type'] for b in self.received]}")

    def start(self, port: int = 0) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if receiver.delay:
                    time.sleep(receiver.delay)
                hook, receiver.on_request = receiver.on_request, None
                if hook is not None:
                    hook()
                status = receiver.answer
                if receiver.redirect_to is not None and self.path == "/hooks":
                    with receiver.lock:  # before answering: the answer ends the client's wait
                        receiver.requests.append((self.path, 302))
                    self.send_response(302)
                    self.send_header("Location", receiver.redirect_to)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                try:
                    verify(receiver.secret, body, self.headers.get(SIGNATURE_HEADER),
                           now=time.time())
                except InvalidSignature:
                    status = 400
                    with receiver.lock:
                        receiver.bad_signatures += 1
                with receiver.lock:
                    receiver.requests.append((self.path, status))
                    if 200 <= status < 300:
                        receiver.received.append(json.loads(body))
                        receiver.headers[receiver.received[-1]["id"]] = {
                            name.lower(): value for name, value in self.headers.items()}
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        """Down: the port closed (a connection is refused)."""
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


@contextmanager
def receiver(secret: str) -> Iterator[Receiver]:
    running = Receiver(secret)
    running.start()
    try:
        yield running
    finally:
        running.stop()

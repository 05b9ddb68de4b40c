"""FakePay: a fake payment provider with a small JSON-over-HTTP API, for the walk-through
(docs/walkthrough.md) and its tests. Standard library only.

Run it (``python examples/walkthrough/fakepay_server.py --port 8765``) or start it from a
test (``with running() as base_url: ...``: a free port, stopped on leaving the block).

The API, amounts in minor units::

    POST /v1/holds                  {token, amount, currency, reference}   201 the hold
    POST /v1/holds/{id}/capture     {amount, currency}                     200 the hold
    POST /v1/holds/{id}/void        {}                                     200 the hold
    POST /v1/holds/{id}/refunds     {amount, currency}                     201 {id, amount, ...}
    GET  /v1/holds?idempotency_key=K                                       200 the hold, or 404

A hold is ``{id, amount, currency, reference, status, captured, refunded, expires_at}``,
its status ``held``, ``captured``, ``voided`` or ``expired`` (a hold lapses after
``hold_seconds``). Every POST needs an ``Idempotency-Key`` header. Keys are remembered per
endpoint: the same key with the same request (path and body) answers the first answer
again, whatever it was; with another request, ``422 {"error": "idempotency_key_reused"}``.
A 503 is not remembered (the request did nothing; try again with the same key).

Tokens: ``tok_ok`` is approved, ``tok_no`` declined (``402 {"error": "card_declined"}``),
anything else too (``402 {"error": "invalid_token"}``). Other refusals, each
``{"error": code, "message": ...}``: ``404 no_such_hold``; ``402 hold_expired`` (a capture
of a lapsed hold); ``409 already_captured`` (a capture or void of a captured hold; the body
says how much was ``captured``); ``409 hold_voided`` (a capture or void of a voided hold);
``409 hold_expired`` (a void of a lapsed hold); ``402 amount_too_large`` (a capture above
the hold); ``402 refund_exceeds_capture``; ``409 not_captured`` (a refund of a hold not
captured); ``402 currency_mismatch``.

What a test may do to it (not part of a real provider's API)::

    POST /_control {"fail_next": 2}    the next 2 requests answer 503 and do nothing
    POST /_control {"expire": "hold_…"} the hold lapses now
    POST /_control {"reset": true}     forget everything (holds, keys, failures)
    GET  /_control/holds               every hold, oldest first (the provider's dashboard)
"""

from __future__ import annotations

import argparse
import json
import re
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

__all__ = ["FakePay", "main", "running"]

_HOLD = re.compile(r"/v1/holds/([^/]+)/(capture|void|refunds)")

#: what a handler answers: HTTP status and JSON body
Answer = tuple[int, dict[str, Any]]

#: how a capture and a void of a hold that is no longer held are refused, by its status
_REFUSALS: dict[str, dict[str, tuple[int, str, str]]] = {
    "capture": {"captured": (409, "already_captured", "the hold was captured"),
                "voided": (409, "hold_voided", "the hold was voided"),
                "expired": (402, "hold_expired", "the hold lapsed: nothing was captured")},
    "void": {"captured": (409, "already_captured", "the hold was captured"),
             "voided": (409, "hold_voided", "the hold was voided already"),
             "expired": (409, "hold_expired", "the hold lapsed: nothing to void")},
}


def _refusal(status: int, code: str, message: str, **more: Any) -> Answer:
    return status, {"error": code, "message": message, **more}


class FakePay:
    """The provider's state, behind one lock: holds, refunds, remembered idempotency keys,
    and the test switches."""

    def __init__(self, *, hold_seconds: float = 7 * 24 * 3600) -> None:
        self.hold = timedelta(seconds=hold_seconds)
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        self.holds: dict[str, dict[str, Any]] = {}
        self.by_key: dict[str, str] = {}  # authorize's idempotency key -> hold id
        #: (endpoint, key) -> (the request's fingerprint, the answer given)
        self.keys: dict[tuple[str, str], tuple[str, Answer]] = {}
        self.fail_next = 0

    # -- the API --------------------------------------------------------------------------

    def post(self, path: str, body: dict[str, Any], key: str) -> Answer:
        """A POST with its ``Idempotency-Key``."""
        with self.lock:
            refused = self._unavailable()
            if refused is not None:
                return refused
            match = _HOLD.fullmatch(path)
            endpoint = "create_hold" if path == "/v1/holds" else match and match.group(2)
            if not endpoint:
                return _refusal(404, "no_such_endpoint", f"POST {path}")
            fingerprint = json.dumps([path, body], sort_keys=True)
            seen = self.keys.get((endpoint, key))
            if seen is not None:  # the first answer again, for the same request only
                return seen[1] if seen[0] == fingerprint else _refusal(
                    422, "idempotency_key_reused",
                    f"key {key!r} was used for another {endpoint} request")
            try:
                answer = (self._create_hold(body, key) if match is None
                          else self._on_hold(match.group(1), match.group(2), body, key))
            except (KeyError, TypeError, ValueError) as exc:
                return _refusal(400, "invalid_request", f"{type(exc).__name__}: {exc}")
            self.keys[endpoint, key] = (fingerprint, answer)
            return answer

    def get(self, path: str, query: dict[str, list[str]]) -> Answer:
        with self.lock:
            refused = self._unavailable()
            if refused is not None:
                return refused
            if path != "/v1/holds" or "idempotency_key" not in query:
                return _refusal(404, "no_such_endpoint", f"GET {path}")
            hold_id = self.by_key.get(query["idempotency_key"][0])
            if hold_id is None:
                return _refusal(404, "no_such_hold", "no hold was made under this key")
            return 200, self._current(hold_id)

    # -- what a test may do -----------------------------------------------------------------

    def control(self, body: dict[str, Any]) -> Answer:
        with self.lock:
            if body.get("reset"):
                self.reset()
            if "fail_next" in body:
                self.fail_next = int(body["fail_next"])
            if "expire" in body:
                hold = self.holds.get(str(body["expire"]))
                if hold is None:
                    return _refusal(404, "no_such_hold", str(body["expire"]))
                if hold["status"] == "held":
                    hold["status"] = "expired"
            return 200, {"fail_next": self.fail_next}

    def dashboard(self) -> Answer:
        with self.lock:
            return 200, {"holds": [self._current(hold_id) for hold_id in self.holds]}

    # -- internals ------------------------------------------------------------------------

    def _current(self, hold_id: str) -> dict[str, Any]:
        """The hold as it is now: a hold past its deadline has lapsed."""
        hold = self.holds[hold_id]
        if hold["status"] == "held" and datetime.now(UTC) >= datetime.fromisoformat(
                hold["expires_at"]):
            hold["status"] = "expired"
        return dict(hold, refunds=list(hold["refunds"]))

    def _create_hold(self, body: dict[str, Any], key: str) -> Answer:
        token, amount, currency = str(body["token"]), int(body["amount"]), str(body["currency"])
        if amount <= 0:
            return _refusal(400, "invalid_request", "amount: more than 0")
        if token != "tok_ok":
            code = "card_declined" if token == "tok_no" else "invalid_token"
            return _refusal(402, code, "the card was declined")
        hold_id = f"hold_{secrets.token_hex(8)}"
        self.holds[hold_id] = {
            "id": hold_id, "amount": amount, "currency": currency,
            "reference": str(body.get("reference", "")), "status": "held",
            "captured": 0, "refunded": 0, "refunds": [],
            "expires_at": (datetime.now(UTC) + self.hold).isoformat(timespec="seconds"),
        }
        self.by_key[key] = hold_id
        return 201, self._current(hold_id)

    def _unavailable(self) -> Answer | None:
        """A 503 while ``fail_next`` lasts (nothing done, nothing remembered)."""
        if self.fail_next <= 0:
            return None
        self.fail_next -= 1
        return _refusal(503, "unavailable", "FakePay is busy: try again")

    def _on_hold(self, hold_id: str, action: str, body: dict[str, Any], key: str) -> Answer:
        if hold_id not in self.holds:
            return _refusal(404, "no_such_hold", f"no hold {hold_id!r}")
        hold = self._current(hold_id)
        if action != "void" and str(body["currency"]) != hold["currency"]:
            return _refusal(402, "currency_mismatch", f"the hold is in {hold['currency']}")
        if action == "refunds":
            return self._refund(hold, int(body["amount"]), key)
        refused = _REFUSALS[action].get(hold["status"])
        if refused is not None:
            status, code, message = refused
            captured = {"captured": hold["captured"]} if code == "already_captured" else {}
            return _refusal(status, code, message, **captured)
        if action == "void":
            self.holds[hold_id]["status"] = "voided"
        else:
            amount = int(body["amount"])
            if not 0 < amount <= hold["amount"]:
                return _refusal(402, "amount_too_large", "a capture is at most the hold")
            self.holds[hold_id].update(status="captured", captured=amount)
        return 200, self._current(hold_id)

    def _refund(self, hold: dict[str, Any], amount: int, key: str) -> Answer:
        if hold["status"] != "captured":
            return _refusal(409, "not_captured", f"the hold is {hold['status']}: nothing to "
                                                 "refund")
        left = hold["captured"] - hold["refunded"]
        if not 0 < amount <= left:
            return _refusal(402, "refund_exceeds_capture", f"{left} left to refund")
        refund = {"id": f"re_{secrets.token_hex(8)}", "hold": hold["id"], "amount": amount,
                  "currency": hold["currency"], "idempotency_key": key}
        self.holds[hold["id"]]["refunded"] += amount
        self.holds[hold["id"]]["refunds"].append(refund)
        return 201, refund


def _handler(provider: FakePay, *, quiet: bool) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "FakePay/1.0"

        def _answer(self, answer: Answer) -> None:
            status, body = answer
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _body(self) -> dict[str, Any] | None:
            length = int(self.headers.get("Content-Length") or 0)
            try:
                body = json.loads(self.rfile.read(length) or b"{}")
            except ValueError:
                return None
            return body if isinstance(body, dict) else None

        def do_POST(self) -> None:
            path = urlsplit(self.path).path
            body = self._body()
            if body is None:
                self._answer(_refusal(400, "invalid_json", "send a JSON object"))
            elif path == "/_control":
                self._answer(provider.control(body))
            elif not (key := self.headers.get("Idempotency-Key")):
                self._answer(_refusal(400, "idempotency_key_missing",
                                      "send an Idempotency-Key header"))
            else:
                self._answer(provider.post(path, body, key))

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            if url.path == "/_control/holds":
                self._answer(provider.dashboard())
            else:
                self._answer(provider.get(url.path, parse_qs(url.query)))

        def log_message(self, format: str, *args: Any) -> None:
            if not quiet:
                super().log_message(format, *args)

    return Handler


@contextmanager
def running(host: str = "127.0.0.1", port: int = 0, *, hold_seconds: float = 7 * 24 * 3600,
            quiet: bool = True) -> Iterator[str]:
    """FakePay serving in a thread of this process: its base URL (``http://host:port``; a
    free port unless one is given), stopped on leaving the block."""
    server = ThreadingHTTPServer((host, port), _handler(FakePay(hold_seconds=hold_seconds),
                                                        quiet=quiet))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              name="fakepay", daemon=True)
    thread.start()
    try:
        yield f"http://{host}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="FakePay, a fake payment provider")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--hold-seconds", type=float, default=7 * 24 * 3600,
                        help="how long a hold lasts before it lapses (default: 7 days)")
    args = parser.parse_args(argv)
    server = ThreadingHTTPServer((args.host, args.port),
                                 _handler(FakePay(hold_seconds=args.hold_seconds), quiet=False))
    server.daemon_threads = True
    print(f"FakePay listening on http://{args.host}:{server.server_address[1]} "
          "(Ctrl-C stops it)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

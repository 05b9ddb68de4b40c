"""A local stand-in for Stripe: the part of its REST API the adapter uses, for tests and the
fault-injection run. It is a test double of the *provider*: the adapter under test is the
one users run, talking through the official ``stripe`` client over real HTTP.

Implemented: ``POST /v1/payment_intents`` (confirm, manual capture), ``GET
/v1/payment_intents/{id}``, ``GET /v1/payment_intents`` (a page at a time), ``GET
/v1/payment_intents/search`` (``metadata['k']:'v'``), ``expand`` of ``latest_charge``,
``POST /v1/payment_intents/{id}/capture`` (``amount_to_capture``), ``.../cancel``, ``POST
/v1/refunds``; idempotency keys as Stripe keeps them (the same key and parameters replay
the first response with ``Idempotent-Replayed: true``; other parameters are a 400
``idempotency_error``; requests are served one at a time, so none is ever "in flight");
webhooks signed with the
``Stripe-Signature`` scheme (``t=...,v1=HMAC-SHA256(secret, "t.body")``).

Also ``GET /v1/refunds?payment_intent=`` (a page, newest first), and the events
``payment_intent.*``, ``charge.refunded`` and ``refund.created`` (the refund with its
metadata, so that refunds made in the dashboard can be told from the adapter's).

Switches under ``/_control`` (not Stripe's): ``reset``, ``faults`` (latency, 5xx, connection
resets before the work, lost and late responses *after* it, duplicate and out-of-order
webhooks, refused refunds, all by rate with a seed; and the share of holds that lapse by
themselves within seconds, ``short_holds``, ``hold_seconds``), ``webhooks`` (where to deliver
and the secret), ``expire:<id>`` (an authorization lapses now), ``dashboard_refund:<id>``
(``{"amount"}``: a refund made by hand in the dashboard), and ``state`` (every payment
intent and refund: the provider's books, to compare with the order store's).

Run it: ``python -m commerce_core_stripe.provider --port 12111``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import hmac
import json
import random
import re
import secrets
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

__all__ = ["Faults", "Provider", "create_app", "main", "sign"]

DECLINING = re.compile(r"declin|fail", re.IGNORECASE)  # pm_card_chargeDeclined, tok_declined
HOLD_DAYS = 7


def sign(payload: str, secret: str, timestamp: int | None = None) -> str:
    """A ``Stripe-Signature`` header value for ``payload``."""
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{t}.{payload}".encode(), hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def _nested(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """``a[b]=1&c[0]=x`` as ``{"a": {"b": "1"}, "c": ["x"]}`` (Stripe's form encoding)."""
    result: dict[str, Any] = {}
    for key, value in pairs:
        parts = re.findall(r"[^\[\]]+", key)
        node: Any = result
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if isinstance(node, list):
                index = int(part)
                while len(node) <= index:
                    node.append({} if not last else None)
                if last:
                    node[index] = value
                node = node[index]
            elif last:
                node[part] = value
            else:
                following = parts[i + 1]
                node = node.setdefault(part, [] if following.isdigit() else {})
    return result


class Faults:
    """What goes wrong, and how often (rates in [0, 1])."""

    def __init__(self) -> None:
        self.configure({})

    def configure(self, settings: dict[str, Any]) -> None:
        self.latency = float(settings.get("latency", 0.0))  # seconds added to each call
        self.server_errors = float(settings.get("server_errors", 0.0))  # 5xx before the work
        self.resets = float(settings.get("resets", 0.0))  # connection dropped before the work
        self.lost_responses = float(settings.get("lost_responses", 0.0))  # dropped after it
        self.slow_responses = float(settings.get("slow_responses", 0.0))  # late, after it
        self.slow_seconds = float(settings.get("slow_seconds", 5.0))
        self.duplicate_webhooks = float(settings.get("duplicate_webhooks", 0.0))
        self.reorder_webhooks = float(settings.get("reorder_webhooks", 0.0))
        self.refund_declines = float(settings.get("refund_declines", 0.0))  # refused refunds
        #: the share of new holds that last only ``hold_seconds`` to ``hold_seconds_max``
        #: (chosen at random) instead of Stripe's seven days; a hold past its deadline
        #: lapses by itself (canceled, ``automatic``), with its webhook
        self.short_holds = float(settings.get("short_holds", 0.0))
        self.hold_seconds = float(settings.get("hold_seconds", 5.0))
        self.hold_seconds_max = float(settings.get("hold_seconds_max", self.hold_seconds))
        self.random = random.Random(settings.get("seed", 0))  # noqa: S311 - faults, not keys

    def roll(self, rate: float) -> bool:
        return rate > 0 and self.random.random() < rate


class Provider:
    """The provider's books: payment intents, refunds, idempotency keys, events."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.faults = Faults()
        self.webhook_url: str | None = None
        self.webhook_secret = "whsec_local"
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.intents: dict[str, dict[str, Any]] = {}
            self.refunds: dict[str, dict[str, Any]] = {}
            self.charges: dict[str, dict[str, Any]] = {}
            self.keys: dict[tuple[str, str], dict[str, Any]] = {}
            self.events: list[dict[str, Any]] = []
            self.pending_webhooks: list[dict[str, Any]] = []
            self.faults.configure({})
            self.calls: dict[str, int] = {}

    # -- the API ---------------------------------------------------------------------------

    def create_intent(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        try:
            amount = int(params["amount"])
            currency = str(params["currency"]).lower()
        except (KeyError, ValueError):
            return 400, _error("invalid_request_error", "parameter_missing",
                               "amount and currency are required")
        if amount < 1:
            return 400, _error("invalid_request_error", "amount_too_small",
                               "Amount must be at least 1")
        method = str(params.get("payment_method", ""))
        now = int(time.time())
        intent_id = f"pi_{secrets.token_hex(12)}"
        intent: dict[str, Any] = {
            "id": intent_id, "object": "payment_intent",
            "amount": amount, "currency": currency, "capture_method": "manual",
            "amount_capturable": 0, "amount_received": 0,
            "created": now, "metadata": dict(params.get("metadata") or {}),
            "payment_method": method, "status": "requires_payment_method",
            "latest_charge": None, "cancellation_reason": None,
            "last_payment_error": None, "livemode": False,
        }
        self.intents[intent_id] = intent
        if DECLINING.search(method):
            intent["last_payment_error"] = {"code": "card_declined",
                                            "decline_code": "generic_decline"}
            self._event("payment_intent.payment_failed", intent)
            body = _error("card_error", "card_declined", "Your card was declined.")
            body["error"]["decline_code"] = "generic_decline"
            body["error"]["payment_intent"] = dict(intent)
            return 402, body
        charge_id = f"ch_{secrets.token_hex(12)}"
        faults = self.faults
        hold: float = HOLD_DAYS * 86400
        if faults.roll(faults.short_holds):
            hold = faults.random.uniform(faults.hold_seconds,
                                         max(faults.hold_seconds, faults.hold_seconds_max))
        self.charges[charge_id] = {
            "id": charge_id, "object": "charge", "amount": amount, "amount_captured": 0,
            "amount_refunded": 0, "payment_intent": intent_id,
            "payment_method_details": {"type": "card", "card": {
                "capture_before": now + max(1, round(hold))}}}
        intent.update(status="requires_capture", amount_capturable=amount,
                      latest_charge=charge_id)
        self._event("payment_intent.amount_capturable_updated", intent)
        return 200, dict(intent)

    def capture(self, intent_id: str, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        intent = self.intents.get(intent_id)
        if intent is None:
            return 404, _missing(intent_id)
        if intent["status"] != "requires_capture":
            return 400, _unexpected_state(intent, "capture")
        amount = int(params.get("amount_to_capture", intent["amount_capturable"]))
        if not 0 < amount <= intent["amount_capturable"]:
            return 400, _error("invalid_request_error", "amount_too_large",
                               "amount_to_capture exceeds the capturable amount")
        intent.update(status="succeeded", amount_received=amount, amount_capturable=0)
        self.charges[intent["latest_charge"]]["amount_captured"] = amount
        self._event("payment_intent.succeeded", intent)
        return 200, dict(intent)

    def cancel(self, intent_id: str) -> tuple[int, dict[str, Any]]:
        intent = self.intents.get(intent_id)
        if intent is None:
            return 404, _missing(intent_id)
        if intent["status"] not in ("requires_capture", "requires_payment_method"):
            return 400, _unexpected_state(intent, "cancel")
        intent.update(status="canceled", amount_capturable=0, cancellation_reason="requested")
        self._event("payment_intent.canceled", intent)
        return 200, dict(intent)

    def refund(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        intent = self.intents.get(str(params.get("payment_intent", "")))
        if intent is None:
            return 404, _missing(str(params.get("payment_intent")))
        charge = self.charges.get(intent["latest_charge"] or "", {"amount_refunded": 0})
        refundable = intent["amount_received"] - charge["amount_refunded"]
        amount = int(params.get("amount", refundable))
        if intent["status"] != "succeeded" or not 0 < amount <= refundable:
            return 400, _error("invalid_request_error", "charge_already_refunded"
                               if refundable == 0 else "amount_too_large",
                               f"Refund amount ({amount}) is greater than unrefunded amount "
                               f"on charge ({refundable})")
        if self.faults.roll(self.faults.refund_declines):
            return 400, _error("invalid_request_error", "refund_declined",
                               "The refund was declined by the card issuer.")
        charge["amount_refunded"] += amount
        refund = {"id": f"re_{secrets.token_hex(12)}", "object": "refund", "amount": amount,
                  "currency": intent["currency"], "payment_intent": intent["id"],
                  "charge": charge.get("id"), "status": "succeeded",
                  "created": int(time.time()), "metadata": dict(params.get("metadata") or {})}
        self.refunds[refund["id"]] = refund
        self._event("charge.refunded", dict(charge))
        self._event("refund.created", dict(refund))
        return 200, dict(refund)

    def list_refunds(self, intent_id: str | None, limit: int) -> tuple[int, dict[str, Any]]:
        """``GET /v1/refunds?payment_intent=``: newest first (one page: at most ``limit``)."""
        found = [dict(r) for r in reversed(self.refunds.values())
                 if intent_id is None or r["payment_intent"] == intent_id]
        return 200, {"object": "list", "data": found[:max(1, min(limit, 100))],
                     "has_more": len(found) > limit, "url": "/v1/refunds"}

    def dashboard_refund(self, intent_id: str, amount: int) -> dict[str, Any]:
        """A refund made by a person in the dashboard: no idempotency key, no metadata."""
        status, body = self.refund({"payment_intent": intent_id, "amount": str(amount)})
        return {"http_status": status, "body": body}

    def lapse_due_holds(self) -> int:
        """Holds past their ``capture_before`` lapse, as Stripe cancels them (``automatic``)."""
        now = time.time()
        lapsed = 0
        for intent in self.intents.values():
            charge = self.charges.get(intent["latest_charge"] or "")
            if intent["status"] == "requires_capture" and charge is not None and now >= (
                    charge["payment_method_details"]["card"]["capture_before"]):
                self.expire(intent["id"])
                lapsed += 1
        return lapsed

    def search(self, query: str) -> tuple[int, dict[str, Any]]:
        match = re.fullmatch(r"\s*metadata\['([^']+)'\]\s*:\s*'([^']*)'\s*", query)
        if match is None:
            return 400, _error("invalid_request_error", "invalid_search_query",
                               "only metadata['key']:'value' is supported here")
        key, value = match.groups()
        found = [dict(i) for i in self.intents.values() if i["metadata"].get(key) == value]
        found.sort(key=lambda i: i["created"], reverse=True)
        return 200, {"object": "search_result", "data": found, "has_more": False,
                     "next_page": None, "url": "/v1/payment_intents/search"}

    def expand(self, payload: Any, fields: list[str]) -> Any:
        """``expand[]=latest_charge`` (on an intent) or ``data.latest_charge`` (on a list)."""
        def with_charge(intent: Any) -> Any:
            if isinstance(intent, dict) and isinstance(intent.get("latest_charge"), str):
                return {**intent, "latest_charge": self.charges.get(intent["latest_charge"])}
            return intent

        if "latest_charge" in fields:
            return with_charge(payload)
        if "data.latest_charge" in fields and isinstance(payload, dict) and "data" in payload:
            return {**payload, "data": [with_charge(i) for i in payload["data"]]}
        return payload

    def expanded_intents(self) -> list[dict[str, Any]]:
        """Every payment intent, its latest charge expanded (``expand[]=latest_charge``)."""
        return [{**i, "latest_charge": self.charges.get(i["latest_charge"] or "")}
                for i in self.intents.values()]

    def retrieve(self, intent_id: str) -> tuple[int, dict[str, Any]]:
        intent = self.intents.get(intent_id)
        return (200, dict(intent)) if intent is not None else (404, _missing(intent_id))

    def page(self, limit: int, starting_after: str | None) -> tuple[int, dict[str, Any]]:
        """Newest first, a page at a time (``limit``, ``starting_after``)."""
        newest_first = [dict(i) for i in reversed(self.intents.values())]
        ids = [i["id"] for i in newest_first]
        start = ids.index(starting_after) + 1 if starting_after in ids else 0
        page = newest_first[start:start + max(1, min(limit, 100))]
        return 200, {"object": "list", "data": page, "url": "/v1/payment_intents",
                     "has_more": start + len(page) < len(newest_first)}

    def expire(self, intent_id: str) -> bool:
        """The authorization lapses, as a card hold does after seven days."""
        intent = self.intents.get(intent_id)
        if intent is None or intent["status"] != "requires_capture":
            return False
        intent.update(status="canceled", amount_capturable=0, cancellation_reason="automatic")
        self._event("payment_intent.canceled", intent)
        return True

    def _event(self, kind: str, subject: dict[str, Any]) -> None:
        event = {"id": f"evt_{secrets.token_hex(12)}", "object": "event", "type": kind,
                 "created": int(time.time()), "livemode": False, "api_version": "2024-06-20",
                 "data": {"object": dict(subject)}}
        self.events.append(event)
        if self.webhook_url is not None:
            self.pending_webhooks.append(event)
            if self.faults.roll(self.faults.duplicate_webhooks):
                self.pending_webhooks.append(event)


def _error(kind: str, code: str, message: str) -> dict[str, Any]:
    return {"error": {"type": kind, "code": code, "message": message}}


def _missing(intent_id: str) -> dict[str, Any]:
    return _error("invalid_request_error", "resource_missing",
                  f"No such payment_intent: '{intent_id}'")


def _unexpected_state(intent: dict[str, Any], action: str) -> dict[str, Any]:
    body = _error("invalid_request_error", "payment_intent_unexpected_state",
                  f"This PaymentIntent could not be {action}d because it has a status of "
                  f"{intent['status']}.")
    body["error"]["payment_intent"] = dict(intent)
    return body


def create_app(provider: Provider | None = None) -> Starlette:
    """The provider as an ASGI app."""
    books = provider or Provider()

    def endpoint(name: str) -> Callable[[Request], Awaitable[Response]]:
        async def handle(request: Request) -> Response:
            return await _api(books, request, name)
        return handle

    async def control(request: Request) -> Response:
        return await _control(books, request)

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        task = asyncio.create_task(_deliver_webhooks(books))
        try:
            yield
        finally:
            task.cancel()

    routes = [
        Route("/v1/payment_intents/search", endpoint("search"), methods=["GET"]),
        Route("/v1/payment_intents", endpoint("create"), methods=["POST"]),
        Route("/v1/payment_intents", endpoint("list"), methods=["GET"]),
        Route("/v1/payment_intents/{id}", endpoint("retrieve"), methods=["GET"]),
        Route("/v1/payment_intents/{id}/capture", endpoint("capture"), methods=["POST"]),
        Route("/v1/payment_intents/{id}/cancel", endpoint("cancel"), methods=["POST"]),
        Route("/v1/refunds", endpoint("refund"), methods=["POST"]),
        Route("/v1/refunds", endpoint("refunds"), methods=["GET"]),
        Route("/_control/{action}", control, methods=["POST", "GET"]),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.provider = books
    return app


async def _api(books: Provider, request: Request, name: str) -> Response:
    if not request.headers.get("authorization", "").startswith(("Bearer sk_", "Basic ")):
        return JSONResponse(_error("invalid_request_error", "api_key_missing",
                                   "Invalid API Key provided"), status_code=401)
    faults = books.faults
    if faults.latency:
        await asyncio.sleep(faults.latency)
    with books.lock:
        fault = _before_the_work(faults)
    if fault is not None:
        return fault
    params = _nested(parse_qsl((await request.body()).decode(), keep_blank_values=True))
    key = request.headers.get("idempotency-key") if request.method == "POST" else None
    route = (request.method, request.url.path)
    with books.lock:
        books.lapse_due_holds()
        books.calls[name] = books.calls.get(name, 0) + 1
        seen = books.keys.get((request.headers["authorization"], key)) if key else None
        if seen is not None and (seen["route"] != route or seen["params"] != params):
            return JSONResponse(_error(
                "idempotency_error", "idempotency_key_reused",
                "Keys for idempotent requests can only be used with the same parameters "
                "they were first used with."), status_code=400)
        if seen is None:
            status, payload = _dispatch(books, name, request, params)
            if key is not None:
                books.keys[(request.headers["authorization"], key)] = {
                    "route": route, "params": params, "status": status, "payload": payload}
        lost = faults.roll(faults.lost_responses)
        slow = faults.roll(faults.slow_responses)
    if lost:  # the work is done; the answer never arrives
        return _Truncated()
    if slow:  # the work is done; the answer comes after the client has given up on it
        await asyncio.sleep(faults.slow_seconds)
    if seen is not None:
        status, payload = seen["status"], seen["payload"]
    expand = params.get("expand") or [v for k, v in request.query_params.multi_items()
                                       if k.startswith("expand")]
    with books.lock:
        payload = books.expand(payload, expand)
    return JSONResponse(payload, status_code=status,
                        headers={"Idempotent-Replayed": "true"} if seen is not None else None)


def _before_the_work(faults: Faults) -> Response | None:
    """A connection reset or a 5xx, before anything is done (the caller holds the lock)."""
    if faults.roll(faults.resets):
        return _Truncated()
    if faults.roll(faults.server_errors):
        return JSONResponse(_error("api_error", "server_error", "An unknown error occurred"),
                            status_code=500)
    return None


async def _control(books: Provider, request: Request) -> Response:
    action = request.path_params["action"]
    data = await request.json() if await request.body() else {}
    with books.lock:
        if action == "reset":
            books.reset()
        elif action == "faults":
            books.faults.configure(data)
        elif action == "webhooks":
            books.webhook_url = data.get("url")
            books.webhook_secret = data.get("secret", books.webhook_secret)
        elif action == "state":
            return JSONResponse({"payment_intents": books.expanded_intents(),
                                 "refunds": list(books.refunds.values()),
                                 "events": len(books.events), "calls": books.calls,
                                 "undelivered_webhooks": len(books.pending_webhooks)})
        elif action.startswith("expire:"):
            return JSONResponse({"expired": books.expire(action.split(":", 1)[1])})
        elif action.startswith("dashboard_refund:"):
            return JSONResponse(books.dashboard_refund(action.split(":", 1)[1],
                                                       int(data["amount"])))
        else:
            return JSONResponse({"error": f"unknown action {action}"}, status_code=404)
    return JSONResponse({"ok": True})


def _dispatch(
    books: Provider, name: str, request: Request, params: dict[str, Any]
) -> tuple[int, Any]:
    intent_id = request.path_params.get("id", "")
    query = request.query_params
    handlers: dict[str, Callable[[], tuple[int, Any]]] = {
        "create": lambda: books.create_intent(params),
        "capture": lambda: books.capture(intent_id, params),
        "cancel": lambda: books.cancel(intent_id),
        "refund": lambda: books.refund(params),
        "search": lambda: books.search(query.get("query", "")),
        "list": lambda: books.page(int(query.get("limit", "10")), query.get("starting_after")),
        "retrieve": lambda: books.retrieve(intent_id),
        "refunds": lambda: books.list_refunds(query.get("payment_intent"),
                                              int(query.get("limit", "10"))),
    }
    return handlers[name]()


class _Truncated(Response):
    """A response that stops half-way: the client sees its connection break, as it would if
    the network failed there (it was promised a body it never gets)."""

    def __init__(self) -> None:
        super().__init__()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        start: Message = {"type": "http.response.start", "status": 200,
                          "headers": [(b"content-type", b"application/json"),
                                      (b"content-length", b"1000")]}
        await send(start)
        await send({"type": "http.response.body", "body": b"{", "more_body": True})
        # returning without the rest makes the server close the connection


async def _deliver_webhooks(books: Provider) -> None:
    """Send queued events to the webhook URL, signed; retry failures like Stripe does (with
    backoff); with the reorder fault, hold some back so later ones overtake them."""
    async with httpx.AsyncClient(timeout=10) as client:
        while True:
            await asyncio.sleep(0.05)
            with books.lock:
                books.lapse_due_holds()
                batch, books.pending_webhooks = books.pending_webhooks, []
                url, secret = books.webhook_url, books.webhook_secret
                if books.faults.reorder_webhooks and len(batch) > 1:
                    held = [e for e in batch if books.faults.roll(books.faults.reorder_webhooks)]
                    batch = [e for e in batch if e not in held] + held
            if url is None:
                continue
            for event in batch:
                await _send(client, url, secret, event, books)


async def _send(client: httpx.AsyncClient, url: str, secret: str, event: dict[str, Any],
                books: Provider) -> None:
    payload = json.dumps(event)
    for attempt in range(5):
        try:
            response = await client.post(url, content=payload, headers={
                "Content-Type": "application/json", "Stripe-Signature": sign(payload, secret)})
            if response.status_code < 300:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.2 * 2 ** attempt)
    with books.lock:  # given up for now: it goes round again later
        books.pending_webhooks.append(event)


def main(argv: list[str] | None = None, serve: Callable[..., None] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m commerce_core_stripe.provider",
                                     description="A local stand-in for Stripe's API.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=12111)
    args = parser.parse_args(argv)
    import uvicorn  # noqa: PLC0415 - only when run as a server

    (serve or uvicorn.run)(create_app(), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()

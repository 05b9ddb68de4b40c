"""A Flask shop that embeds commerce-core in views of its own (a WSGI app cannot mount the
ASGI gateway, and need not): Flask's signed session says who is signed in, the contract's
JSON bodies are read and answered with `commerce_core_gateway.convert`, the background
runner starts with the app (and stops at exit), and a subscriber "mails" confirmations.

    flask --app "examples.flask_host.app:create_app()" run
"""

from __future__ import annotations

import atexit
import secrets
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from flask import Flask, abort, jsonify, request, session
from flask.typing import ResponseReturnValue

from commerce_core import CommerceError, Platform
from commerce_core.events import DomainEvent
from commerce_core.runner import BackgroundRunner
from commerce_core_gateway import convert

__all__ = ["create_app"]

#: The host's own users: name -> (password, staff).
USERS = {"alice": ("wonderland", False), "root": ("hunter2", True)}


def customer() -> str:
    """Who is signed in (Flask's signed session cookie), or 401."""
    name = session.get("user")
    if not isinstance(name, str):
        abort(401)
    return name


def answer(call: Callable[[], tuple[Any, int]]) -> ResponseReturnValue:
    """What ``call`` returns, or the library's error as the contract's problem (RFC 9457,
    with every invalid field's path)."""
    try:
        body, status = call()
    except CommerceError as error:
        problem = convert.problem(error)
        response = jsonify(problem)
        response.status_code = int(problem["status"])
        response.content_type = "application/problem+json"
        return response
    return jsonify(body), status


def create_app(platform: Platform | None = None, *, secret_key: str | None = None,
               recovery_interval: timedelta = timedelta(seconds=30)) -> Flask:
    """The host app over ``platform`` (by default two SQLite files under ``var/flask``)."""
    platform = platform or Platform.from_urls(
        orders="sqlite:///var/flask/orders.db", inventory="sqlite:///var/flask/inv.db",
        payments="sandbox://")
    app = Flask(__name__)
    app.secret_key = secret_key or secrets.token_urlsafe(32)
    mails: list[str] = []

    def mail(event: DomainEvent) -> None:
        mails.append(f"to {event.payload['customer_id']}: order "
                     f"{event.payload['order_id']} {event.type.split('.')[1]}")

    runner = BackgroundRunner(platform, recovery_interval=recovery_interval)
    runner.subscribe("order.confirmed", mail)
    runner.start()

    def shutdown() -> None:  # WSGI has no lifespan: at exit (or when a test says so)
        runner.stop()
        platform.close()

    atexit.register(shutdown)
    app.extensions["commerce"] = {"platform": platform, "runner": runner, "mails": mails,
                                  "shutdown": shutdown}

    @app.post("/login")
    def login() -> ResponseReturnValue:
        data = request.get_json(silent=True) or {}
        known = USERS.get(str(data.get("user")))
        if known is None or not secrets.compare_digest(known[0], str(data.get("password"))):
            abort(401)
        session["user"] = str(data["user"])
        return {"user": session["user"]}

    @app.post("/checkout")
    def checkout() -> ResponseReturnValue:
        who = customer()
        key = request.headers.get("Idempotency-Key")
        if not key:
            return {"title": "Idempotency-Key required"}, 400

        def place() -> tuple[Any, int]:
            command = convert.place_order(request.get_json(silent=True), customer_id=who)
            order = platform.checkout.place_order(command, idempotency_key=key)
            return convert.order_json(order, platform.orders.payment(order)), 201

        return answer(place)

    @app.get("/orders/<order_id>")
    def get_order(order_id: str) -> ResponseReturnValue:
        who = customer()

        def read() -> tuple[Any, int]:
            order = platform.orders.get(order_id, customer_id=who)
            return convert.order_json(order, platform.orders.payment(order)), 200

        return answer(read)

    @app.post("/orders/<order_id>/returns")
    def send_back(order_id: str) -> ResponseReturnValue:
        who = customer()

        def ask() -> tuple[Any, int]:
            lines, reason = convert.request_return(request.get_json(silent=True))
            found = platform.checkout.request_return(order_id, lines=lines, reason=reason,
                                                     customer_id=who)
            return convert.return_json(found), 201

        return answer(ask)

    @app.get("/mails")
    def sent() -> ResponseReturnValue:
        if not USERS.get(customer(), ("", False))[1]:
            abort(403)
        return jsonify(mails)

    return app

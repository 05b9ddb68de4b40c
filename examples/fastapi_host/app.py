"""A FastAPI shop that embeds commerce-core, as an application with users of its own would:

- its own sign-in (``POST /login``: a session cookie, kept server-side) decides who calls
  the commerce HTTP API, mounted at ``/commerce`` (`GatewayConfig.authenticate`);
- the background runner (recovery, expiry, the outbox) starts and stops with the app;
- a subscriber "mails" each confirmed order and each refunded return;
- a route of its own (``GET /account/orders``) calls the library through the async facade.

    uvicorn --factory examples.fastapi_host.app:create_app
"""


# no `from __future__ import annotations` here: FastAPI reads the routes' annotations at
# run time, and those naming the app's own dependencies (local to `create_app`) must be
# objects, not strings

import contextlib
import secrets
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Annotated, Any

import attrs
from fastapi import Cookie, Depends, FastAPI, HTTPException, Response
from pydantic import BaseModel
from starlette.requests import Request

from commerce_core import Money, Platform
from commerce_core.aio import AsyncPlatform
from commerce_core.events import DomainEvent
from commerce_core.runner import BackgroundRunner
from commerce_core_gateway import GatewayConfig, NotAuthenticated, Principal
from commerce_core_gateway import create_app as gateway

__all__ = ["Shop", "User", "create_app"]


@attrs.frozen
class User:
    """The host's own user model."""

    name: str
    password: str
    staff: bool = False


@attrs.define
class Shop:
    """What the app holds: its users and sessions, the library, and the mails it sent."""

    platform: Platform
    users: dict[str, User]
    sessions: dict[str, User] = attrs.field(factory=dict)
    mails: list[str] = attrs.field(factory=list)

    def principal(self, request: Request) -> Principal | None:
        """The host's `Authenticator`: its session cookie names its user."""
        token = request.cookies.get("session")
        if token is None:
            return None  # nobody: the gateway's API keys (for scripts) are looked at next
        user = self.sessions.get(token)
        if user is None:
            raise NotAuthenticated("your session has ended; sign in again")
        return Principal.admin() if user.staff else Principal.customer(user.name)

    def mail(self, event: DomainEvent) -> None:
        """The subscriber: one mail per event (what a real one would send)."""
        payload = event.payload
        if event.type == "order.confirmed":
            total = payload["total"]
            self.mails.append(f"to {payload['customer_id']}: order {payload['order_id']} "
                              f"confirmed, {Money(total['amount'], total['currency'])}")
        elif event.type == "return.refunded":
            refund = payload["return"]["refund"]
            self.mails.append(f"to {payload['customer_id']}: return "
                              f"{payload['return']['id']} refunded "
                              f"{Money(refund['amount'], refund['currency'])}")


class Login(BaseModel):
    user: str
    password: str


def create_app(platform: Platform | None = None, users: dict[str, User] | None = None, *,
               recovery_interval: timedelta = timedelta(seconds=30)) -> FastAPI:
    """The host app over ``platform`` (by default two SQLite files under ``var/fastapi``)."""
    platform = platform or Platform.from_urls(
        orders="sqlite:///var/fastapi/orders.db", inventory="sqlite:///var/fastapi/inv.db",
        payments="sandbox://")
    shop = Shop(platform, users or {"alice": User("alice", "wonderland"),
                                    "root": User("root", "hunter2", staff=True)})
    commerce = gateway(platform, GatewayConfig(authenticate=shop.principal))
    runner = BackgroundRunner(platform, recovery_interval=recovery_interval)
    runner.subscribe("order.confirmed", shop.mail)
    runner.subscribe("return.refunded", shop.mail)
    asynchronous = AsyncPlatform(platform, max_workers=4)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        runner.start()
        try:
            async with commerce.router.lifespan_context(commerce):  # a mount does not run it
                yield
        finally:
            runner.stop()
            await asynchronous.aclose()  # the pool, then the platform

    app = FastAPI(lifespan=lifespan)
    app.state.shop = shop
    app.state.runner = runner
    app.mount("/commerce", commerce)

    def signed_in(session: Annotated[str | None, Cookie()] = None) -> User:
        user = shop.sessions.get(session or "")
        if user is None:
            raise HTTPException(401, "sign in first")
        return user

    @app.post("/login")
    def login(body: Login, response: Response) -> dict[str, str]:
        user = shop.users.get(body.user)
        if user is None or not secrets.compare_digest(user.password, body.password):
            raise HTTPException(401, "wrong user or password")
        token = secrets.token_urlsafe(24)
        shop.sessions[token] = user
        response.set_cookie("session", token, httponly=True, samesite="lax")
        return {"user": user.name}

    @app.get("/account/orders")
    async def my_orders(user: Annotated[User, Depends(signed_in)]) -> list[dict[str, Any]]:
        page = await asynchronous.orders.list(customer_id=user.name)
        return [{"id": order.id, "status": order.status.value, "total": str(order.total)}
                for order in page.items]

    @app.get("/mails")
    def mails(user: Annotated[User, Depends(signed_in)]) -> list[str]:
        if not user.staff:
            raise HTTPException(403, "for staff")
        return list(shop.mails)

    return app

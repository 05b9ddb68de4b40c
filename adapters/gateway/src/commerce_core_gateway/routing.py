"""The route table's vocabulary: endpoints, who may call them, and what a handler gets."""

from __future__ import annotations

import enum
import re
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from typing import Any, Protocol

import attrs
from starlette.responses import Response

from commerce_core import FieldError, Platform
from commerce_core.payments import PaymentNotification
from commerce_core_gateway._schemas import SKU_PATTERN
from commerce_core_gateway.security import Principal

#: An opaque id in a path: printable ASCII but ``/``, spaces and controls.
ID_PATTERN = r"^[!-.0-~]+$"

__all__ = ["CURSOR", "ID_PATTERN", "LIMIT", "Access", "Call", "Endpoint", "Query", "Stop",
           "StoredAnswer", "WebhookParser", "stop"]


class WebhookParser(Protocol):
    """A provider's webhook verifier (``commerce_core_stripe.StripeWebhooks``): the
    notification in a signed delivery, ``None`` for an event not about a payment of ours;
    raises `commerce_core.InvalidSignature`."""

    def parse(self, payload: bytes, headers: Mapping[str, str]) -> PaymentNotification | None:
        ...


class Access(enum.Enum):
    PUBLIC = "public"
    CUSTOMER = "customer"  # customers only (placing an order needs a customer id)
    ADMIN = "admin"
    AUTHENTICATED = "authenticated"  # a customer (their own things) or an admin


@attrs.frozen
class Query:
    """A query parameter: its JSON Schema, and how to read it."""

    name: str
    schema: Mapping[str, Any]


LIMIT = Query("limit", {"type": "integer", "minimum": 1, "maximum": 100, "default": 20})
CURSOR = Query("cursor", {"type": "string", "minLength": 1, "maxLength": 200})


@attrs.frozen
class Endpoint:
    """One route of the table the app and its OpenAPI document are built from."""

    method: str
    path: str
    name: str
    summary: str
    access: Access
    handler: Callable[[Call], Response]
    response: type | None = None
    statuses: tuple[int, ...] = (200,)
    body: type | None = None
    #: the body may be left out (an empty body reads as ``{}``)
    body_optional: bool = False
    #: more problems of a body that did not structure (the platform, the parsed JSON), so
    #: that one answer names them all (placing an order: its unknown SKUs)
    more_errors: Callable[[Platform, Any], list[FieldError]] | None = None
    query: tuple[Query, ...] = ()
    errors: frozenset[int] = frozenset()
    checkout: bool = False
    #: honours ``Idempotency-Key``: the same request again is answered as the first was
    idempotent: bool = False
    #: ... and refuses a request without one (400)
    key_required: bool = False
    #: the command itself takes the key and keeps its record (placing an order): the
    #: pipeline only keeps the response; otherwise the pipeline claims the key first
    core_keyed: bool = False
    #: the digest a repeat must match (default: the route, its path parameters and body)
    fingerprint: Callable[[Call], str] | None = None
    limited: bool = True

    @property
    def path_params(self) -> list[tuple[str, Mapping[str, Any]]]:
        names = re.findall(r"{(\w+)}", self.path)
        identifiers = {"sku", "code"}
        # ids are opaque, but printable: a NUL or another control character is refused
        # here (422), not handed to a database that cannot store it
        return [(n, {"type": "string", "pattern": SKU_PATTERN} if n in identifiers
                 else {"type": "string", "pattern": r"^[A-Z]{2}$"} if n == "country"
                 else {"type": "string", "minLength": 1, "maxLength": 64,
                       "pattern": ID_PATTERN}) for n in names]


@attrs.frozen
class Readiness:
    """What ``/readyz`` asks besides the stores: ``required`` (not ready without them) and
    ``optional`` (the server runs, degraded, without them); name -> a check that raises."""

    required: Mapping[str, Callable[[], None]]
    optional: Mapping[str, Callable[[], None]]
    #: the run of each check still going, by name: a check that hangs is not started again
    #: while it does (it holds one thread, never one per probe)
    running: dict[str, tuple[float, Future[bool]]] = attrs.field(factory=dict, eq=False,
                                                                 repr=False)
    lock: threading.Lock = attrs.field(factory=threading.Lock, eq=False, repr=False)


@attrs.frozen
class Call:
    """What a handler gets: the platform, who is calling, and the validated input."""

    platform: Platform
    principal: Principal | None
    params: Mapping[str, str]
    query: Mapping[str, Any]
    body: Any
    headers: Mapping[str, str]
    raw: bytes = b""
    webhooks: Mapping[str, WebhookParser] = attrs.field(factory=dict)
    #: the request's ``Idempotency-Key`` on an idempotent route (checked), else ``None``
    idempotency_key: str | None = None
    #: what else ``/readyz`` asks (`GatewayConfig.readiness` and ``dependencies``)
    readiness: Readiness = attrs.field(factory=lambda: Readiness({}, {}))


class StoredAnswer(Response):
    """A response the command stored under the request's idempotency key itself, with the
    change it made (`Checkout.place_order`'s ``answer``): not to be stored again."""


class Stop(Exception):
    """Control flow: answer with this response instead of going on."""

    def __init__(self, response: Response) -> None:
        self.response = response


def stop(response: Response) -> Stop:
    """For handlers: raise ``stop(response)`` to answer with ``response``."""
    return Stop(response)

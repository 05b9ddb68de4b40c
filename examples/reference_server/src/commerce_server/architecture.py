"""The server and its CALM architecture: the document of what it is configured with, an
intended architecture read and validated, and the settings taken from one
(``--architecture``)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from commerce_core import FieldError, InvalidInput
from commerce_core.calm import (
    CALM_SCHEMA,
    Credentials,
    Deployment,
    Realisation,
    meta_schemas,
    realise,
)
from commerce_core.retry import RetryPolicy
from commerce_server.config import Settings

__all__ = ["CREDENTIALS", "deployment", "load", "overlay", "schema_errors"]

#: the environment variables that hold each node's user and password (``_USER``,
#: ``_PASSWORD``) when the server runs from an architecture
CREDENTIALS = {"order-database": "COMMERCE_ORDERS_DB", "inventory-database":
               "COMMERCE_INVENTORY_DB", "rate-limit-storage": "COMMERCE_RATE_LIMITS",
               "event-broker": "COMMERCE_EVENTS"}
#: connections per process of a server database whose URL says none (the SQL stores' own
#: default, `commerce_core_sqlalchemy.create_store_engine`)
DEFAULT_POOL_SIZE = 5

_validator: Draft202012Validator | None = None


def schema_errors(document: object, *, limit: int = 20) -> list[FieldError]:
    """Where ``document`` breaks the CALM 1.1 meta schemas (JSON Schema 2020-12), at most
    ``limit`` places."""
    global _validator  # noqa: PLW0603 - the registry is built once, on first use
    if _validator is None:
        registry: Registry[Any] = Registry().with_resources(
            (schema["$id"], Resource.from_contents(schema)) for schema in meta_schemas())
        _validator = Draft202012Validator(registry.contents(CALM_SCHEMA), registry=registry)
    found = []
    for error in _validator.iter_errors(document):
        path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
        found.append(FieldError(path.lstrip(".") or "$", error.message[:300]))
        if len(found) == limit:
            break
    return found


def load(path: Path) -> dict[str, Any]:
    """A CALM architecture from a file: read, parsed and valid against the meta schemas,
    else `InvalidInput` saying where (a file that cannot be read: `OSError`)."""
    text = path.read_bytes()
    try:
        document = json.loads(text)
    except (ValueError, RecursionError) as error:  # UnicodeDecodeError is a ValueError
        raise InvalidInput(f"{path} is not JSON", [FieldError("$", str(error)[:300])]) \
            from None
    if not isinstance(document, dict):
        raise InvalidInput(f"{path} is not a CALM architecture",
                           [FieldError("$", "must be a JSON object")])
    try:
        errors = schema_errors(document)
    except RecursionError:
        errors = [FieldError("$", "is nested too deeply")]
    if errors:
        raise InvalidInput(f"{path} is not a valid CALM 1.1 architecture", errors)
    return document


def credentials(env: Mapping[str, str]) -> dict[str, Credentials]:
    return {node: (env.get(f"{name}_USER") or None, env.get(f"{name}_PASSWORD") or None)
            for node, name in CREDENTIALS.items()}


def overlay(realisation: Realisation) -> dict[str, str]:
    """The environment variables an architecture sets."""
    found = {"COMMERCE_ORDERS_URL": realisation.orders_url,
             "COMMERCE_INVENTORY_URL": realisation.inventory_url}
    if realisation.rate_limit is not None:
        found["COMMERCE_RATE_LIMIT"] = realisation.rate_limit
    if realisation.rate_limit_storage_url is not None:
        found["COMMERCE_RATE_LIMITS_URL"] = realisation.rate_limit_storage_url
    if realisation.broker_url is not None:
        found["COMMERCE_EVENTS_URL"] = realisation.broker_url
    return found


def apply(document: Mapping[str, Any], env: Mapping[str, str],
          ) -> tuple[Realisation, dict[str, str]]:
    """What the architecture names, and the environment variables it sets (for the server
    to put into its environment, where every worker reads them, once it can run);
    `InvalidInput` when it cannot be realised or a variable already says otherwise (which of
    the two was meant is not for the server to guess)."""
    realisation = realise(document, credentials=credentials(env))
    wanted = overlay(realisation)
    clashes = [FieldError(name, "is set and the architecture says otherwise: leave one out")
               for name, value in wanted.items() if env.get(name) and env[name] != value]
    if clashes:
        raise InvalidInput("the architecture and the environment disagree", clashes)
    return realisation, wanted


def deployment(settings: Settings, *, host: str, port: int, workers: int) -> Deployment:
    """What the server is configured with, for `commerce_core.calm.describe`."""
    scheme = "https" if settings.tls_certfile else "http"
    return Deployment(
        orders_url=settings.orders_url, inventory_url=settings.inventory_url,
        payments_url=settings.payments_url,
        gateway_url=f"{scheme}://{f'[{host}]' if ':' in host else host}:{port}/v1",
        rate_limit=settings.rate_limit,
        rate_limit_storage_url=(None if settings.rate_limits_url.startswith("memory://")
                                else settings.rate_limits_url),
        broker_url=None if settings.events_url.startswith("memory://") else settings.events_url,
        workers=workers, pool_size=DEFAULT_POOL_SIZE,
        payment_retry=RetryPolicy(total=settings.payment_retry_total))

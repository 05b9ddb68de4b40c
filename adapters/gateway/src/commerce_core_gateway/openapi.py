"""The OpenAPI 3.1 document, generated from the route table and the attrs body classes."""

from __future__ import annotations

import types
import typing
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    from commerce_core_gateway.routing import Endpoint

__all__ = ["openapi_document"]

_SCALARS: dict[Any, dict[str, Any]] = {
    int: {"type": "integer"}, str: {"type": "string"}, bool: {"type": "boolean"},
}
_STATUS_TEXT = {
    200: "OK", 201: "Created", 400: "Malformed request", 401: "Not authenticated",
    402: "Payment declined", 403: "Forbidden", 404: "Not found", 409: "Conflict",
    413: "Body too large", 415: "Unsupported media type", 422: "Invalid request",
    429: "Too many requests", 503: "Unavailable",
}


class _Schemas:
    def __init__(self) -> None:
        self.components: dict[str, Any] = {}

    def of(self, kind: Any, *, closed: bool) -> dict[str, Any]:
        if kind in _SCALARS:
            return dict(_SCALARS[kind])
        origin = typing.get_origin(kind)
        if origin in (types.UnionType, typing.Union):
            members = [m for m in typing.get_args(kind) if m is not type(None)]
            inner = self.of(members[0], closed=closed)
            return {"anyOf": [inner, {"type": "null"}]}
        if origin is list:
            return {"type": "array", "items": self.of(typing.get_args(kind)[0], closed=closed)}
        if origin is dict:
            return {"type": "object",
                    "additionalProperties": self.of(typing.get_args(kind)[1], closed=closed)}
        if attrs.has(kind):
            return self.ref(kind, closed=closed)
        raise TypeError(f"no JSON Schema for {kind!r}")

    def ref(self, cls: type, *, closed: bool) -> dict[str, Any]:
        name = cls.__name__
        given = getattr(cls, "json_schema", None)
        if isinstance(given, dict):  # a body that is no attrs class (an open object)
            self.components[name] = given
        elif name not in self.components:
            self.components[name] = {}  # placeholder against recursion
            hints = typing.get_type_hints(cls)
            properties: dict[str, Any] = {}
            required: list[str] = []
            for a in attrs.fields(cls):
                schema = self.of(hints[a.name], closed=closed)
                constraints = a.metadata.get("schema", {})
                if constraints and "anyOf" in schema:
                    schema["anyOf"][0].update(constraints)
                else:
                    schema.update(constraints)
                properties[a.name] = schema
                if a.default is attrs.NOTHING:
                    required.append(a.name)
            component: dict[str, Any] = {"type": "object", "properties": properties,
                                         "required": required}
            if closed:
                component["additionalProperties"] = False
            if cls.__doc__ and not cls.__doc__.startswith(f"{name}("):
                component["description"] = cls.__doc__.strip().splitlines()[0]
            self.components[name] = component
        return {"$ref": f"#/components/schemas/{name}"}


def openapi_document(endpoints: Sequence[Endpoint], *, title: str, version: str,
                     problem_type: type) -> dict[str, Any]:
    """Build the document: one operation per endpoint, request and response schemas from
    the attrs classes, every documented error as an RFC 9457 problem."""
    schemas = _Schemas()
    problem = schemas.ref(problem_type, closed=False)
    paths: dict[str, Any] = {}
    for endpoint in endpoints:
        operation: dict[str, Any] = {"operationId": endpoint.name, "summary": endpoint.summary,
                                     "responses": {}}
        if endpoint.access.value != "public":
            operation["security"] = [{"bearer": []}]
        parameters = [
            {"name": name, "in": "path", "required": True, "schema": dict(schema)}
            for name, schema in endpoint.path_params
        ] + [
            {"name": q.name, "in": "query", "required": False, "schema": dict(q.schema)}
            for q in endpoint.query
        ]
        if endpoint.idempotent:
            parameters.append({
                "name": "Idempotency-Key", "in": "header", "required": endpoint.key_required,
                "description": "the same request again under this key is answered as the "
                               "first was (Idempotent-Replayed: true); another request "
                               "under it: 422; while the first still runs: 409",
                "schema": {"type": "string", "minLength": 1, "maxLength": 255,
                           "pattern": r"^[\x20-\x7e]+$"},
            })
        if parameters:
            operation["parameters"] = parameters
        if endpoint.body is not None:
            operation["requestBody"] = {"required": not endpoint.body_optional, "content": {
                "application/json": {"schema": schemas.ref(endpoint.body, closed=True)}}}
        for status in endpoint.statuses:
            response: dict[str, Any] = {"description": _STATUS_TEXT.get(status, str(status))}
            if endpoint.response is not None:
                response["content"] = {"application/json": {
                    "schema": schemas.ref(endpoint.response, closed=False)}}
            operation["responses"][str(status)] = response
        for status in sorted(endpoint.errors):
            operation["responses"][str(status)] = {
                "description": _STATUS_TEXT.get(status, str(status)),
                "content": {"application/problem+json": {"schema": problem}},
            }
        paths.setdefault(endpoint.path, {})[endpoint.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {
            "schemas": schemas.components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }

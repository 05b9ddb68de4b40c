"""Request and response bodies: attrs classes whose field metadata carries the JSON Schema
constraints, checked after cattrs has structured the types, so every error keeps its path."""

from __future__ import annotations

import functools
import re
import typing
from collections.abc import Iterator
from typing import Any, TypeVar

import attrs
import cattrs
from cattrs.cols import list_structure_factory
from cattrs.errors import (
    AttributeValidationNote,
    ClassValidationError,
    ForbiddenExtraKeysError,
    IterableValidationError,
)
from cattrs.gen import make_dict_structure_fn, override

from commerce_core import FieldError, InvalidInput

__all__ = ["Checked", "constraints", "converter", "structure"]

T = TypeVar("T")
SKU_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"


def constraints(**schema: Any) -> dict[str, Any]:
    """Field metadata for ``attrs.field(metadata=...)``: JSON Schema keywords (``minimum``,
    ``maxLength``, ``pattern``, ``minItems``, ``description``, ...) that are checked while
    structuring and published in the OpenAPI document."""
    return {"schema": schema}


def _problems(value: Any, schema: dict[str, Any]) -> Iterator[str]:
    if "enum" in schema and value not in schema["enum"]:
        yield "must be one of " + ", ".join(map(str, schema["enum"]))
    if isinstance(value, int) and not isinstance(value, bool):
        yield from _number_problems(value, schema)
    if isinstance(value, str):
        yield from _text_problems(value, schema)
    if isinstance(value, list):
        if "minItems" in schema and len(value) < schema["minItems"]:
            yield f"must have at least {schema['minItems']} item(s)"
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            yield f"must have at most {schema['maxItems']} items"
    if isinstance(value, dict) and len(value) > schema.get("maxProperties", len(value)):
        yield f"must have at most {schema['maxProperties']} keys"


def _number_problems(value: int, schema: dict[str, Any]) -> Iterator[str]:
    if "minimum" in schema and value < schema["minimum"]:
        yield f"must be at least {schema['minimum']}"
    if "maximum" in schema and value > schema["maximum"]:
        yield f"must be at most {schema['maximum']}"
    if "not" in schema and value == schema["not"]["const"]:
        yield f"must not be {schema['not']['const']}"


def _text_problems(value: str, schema: dict[str, Any]) -> Iterator[str]:
    if "minLength" in schema and len(value) < schema["minLength"]:
        yield f"must have at least {schema['minLength']} character(s)"
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        yield f"must have at most {schema['maxLength']} characters"
    if "pattern" in schema and not re.search(schema["pattern"], value):
        yield f"must match {schema['pattern']}"


class Checked:
    """Marker for request bodies: their fields' constraints are checked while structuring."""


def _strict(kind: type, name: str) -> Any:
    def hook(value: Any, _: type) -> Any:
        # JSON true is not 1, and "2" is not 2: no coercion between JSON types
        if type(value) is not kind:
            raise TypeError(f"must be {name}")
        return value
    return hook


converter = cattrs.Converter(forbid_extra_keys=True)
converter.register_structure_hook(int, _strict(int, "an integer"))
converter.register_structure_hook(str, _strict(str, "a string"))
converter.register_structure_hook(bool, _strict(bool, "a boolean"))


def _json_list(kind: Any) -> Any:
    """A JSON array, and only that: a string is not a list of its characters, nor an object
    a list of its keys (cattrs' own list hook takes any iterable)."""
    items = list_structure_factory(kind, converter)

    def hook(value: Any, _: Any) -> Any:
        if not isinstance(value, list):
            raise TypeError("must be a list")
        return items(value, kind)
    return hook


converter.register_structure_hook_factory(
    lambda kind: getattr(kind, "__origin__", None) is list, _json_list)


def _constrained(base: Any, schema: dict[str, Any]) -> Any:
    def hook(value: Any, kind: Any) -> Any:
        result = base(value, kind)
        problems = [FieldError("", message) for message in _problems(result, schema)]
        items = schema.get("items")
        if isinstance(result, list) and isinstance(items, dict):  # each item's own keywords
            problems += [FieldError(f"[{index}]", message) for index, item in enumerate(result)
                         for message in _problems(item, items)]
        if problems:
            raise InvalidInput("invalid value", problems)
        return result
    return hook


def _checked_structure(cls: type) -> Any:
    """Structure a request body attribute by attribute, each checked against its constraints
    as it is structured, so that cattrs reports every field's problem with its path."""
    hints = _hints(cls)
    overrides = {
        a.name: override(struct_hook=_constrained(converter.get_structure_hook(hints[a.name]),
                                                  a.metadata["schema"]))
        for a in attrs.fields(cls) if a.metadata.get("schema")
    }
    options: dict[str, Any] = {"_cattrs_forbid_extra_keys": True, **overrides}
    return make_dict_structure_fn(cls, converter, **options)


converter.register_structure_hook_factory(
    lambda kind: isinstance(kind, type) and issubclass(kind, Checked), _checked_structure)


def _join(path: str, part: str) -> str:
    if part.startswith("["):
        return f"{path}{part}"
    return f"{path}.{part}" if path else part


def _type_name(kind: Any) -> str:
    names = {int: "an integer", str: "a string", bool: "a boolean", list: "a list"}
    if kind in names:
        return names[kind]
    origin = getattr(kind, "__origin__", None)
    if origin is list:
        return "a list"
    if attrs.has(kind):
        return "an object"
    return "a valid value"


def _errors(exc: BaseException, path: str, kind: Any = None) -> Iterator[FieldError]:
    if isinstance(exc, ClassValidationError | IterableValidationError):
        with_notes, without = exc.group_exceptions()
        for inner, note in with_notes:
            if isinstance(note, AttributeValidationNote):
                yield from _errors(inner, _join(path, note.name), note.type)
            elif isinstance(note.index, str):  # a key of an object (a mapping)
                yield from _errors(inner, _join(path, note.index), note.type)
            else:
                yield from _errors(inner, _join(path, f"[{note.index}]"), note.type)
        for inner in without:  # e.g. the extra keys of this very object
            yield from _errors(inner, path, kind)
    elif isinstance(exc, ForbiddenExtraKeysError):
        for extra in sorted(exc.extra_fields):
            yield FieldError(_join(path, extra), "unknown field")
    elif isinstance(exc, InvalidInput):
        for error in exc.errors:
            yield FieldError(_join(path, error.path) if error.path else path, error.message)
    else:
        yield FieldError(path, _leaf_message(exc, kind))


def _leaf_message(exc: BaseException, kind: Any) -> str:
    if isinstance(exc, KeyError):
        return "required field missing"
    if isinstance(exc, TypeError) and str(exc).startswith("must be "):
        return str(exc)
    if isinstance(exc, ValueError) and str(exc):
        return str(exc)  # an attrs validator's own message (cattrs says "invalid value")
    return f"must be {_type_name(kind)}"


@functools.cache
def _hints(cls: Any) -> dict[str, Any]:
    """The type hints of a body class, evaluated once (they are strings: evaluating them
    on every request cost a place-order request 0.6 ms)."""
    return typing.get_type_hints(cls)


def _trimmed(data: Any, cls: Any, path: str, errors: list[FieldError]) -> Any:
    """``data`` with every list longer than its ``maxItems`` cut to that length, and an
    error for each in ``errors``: found before anything is structured, so a body of 21,000
    empty lines costs the work and the errors of at most ``maxItems`` of them (OWASP API4)."""
    if not (isinstance(data, dict) and attrs.has(cls)):
        return data
    hints = _hints(cls)
    trimmed = dict(data)
    for field in attrs.fields(cls):
        value = data.get(field.name)
        where = _join(path, field.name)
        most = field.metadata.get("schema", {}).get("maxItems")
        if isinstance(value, list) and most is not None and len(value) > most:
            errors.append(FieldError(where, f"must have at most {most} items"))
            value = value[:most]
        kind = hints[field.name]
        if isinstance(value, list) and getattr(kind, "__origin__", None) is list:
            value = [_trimmed(item, kind.__args__[0], f"{where}[{index}]", errors)
                     for index, item in enumerate(value)]
        elif isinstance(value, dict):
            value = _trimmed(value, kind, where, errors)
        if field.name in data:
            trimmed[field.name] = value
    return trimmed


def structure(data: Any, cls: type[T]) -> T:
    """``data`` (parsed JSON) as ``cls``, or `InvalidInput` listing every problem with
    its JSON path (``lines[0].quantity``)."""
    if not isinstance(data, dict):
        raise InvalidInput("invalid request", [FieldError("", "the body must be a JSON object")])
    oversized: list[FieldError] = []
    data = _trimmed(data, cls, "", oversized)
    try:
        structured = converter.structure(data, cls)
    except (ClassValidationError, IterableValidationError, InvalidInput) as exc:
        raise InvalidInput("invalid request", [*oversized, *_errors(exc, "")]) from None
    if oversized:
        raise InvalidInput("invalid request", oversized)
    return structured

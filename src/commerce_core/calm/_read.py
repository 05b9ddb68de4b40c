"""Reading a CALM architecture defensively: what the check and the realisation use of it,
every wrong shape a `FieldError` (never a ``KeyError`` or a ``TypeError`` from deep inside)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from commerce_core.errors import FieldError, InvalidInput

#: the relationship kinds of CALM 1.1
KINDS = ("interacts", "connects", "deployed-in", "composed-of", "options")


@attrs.frozen(kw_only=True)
class Relationship:
    unique_id: str
    kind: str
    #: connects: (source, destination); interacts: (actor, *nodes); composed-of:
    #: (container, *nodes); other kinds: ()
    ends: tuple[str, ...]
    #: connects: the destination's interfaces named
    interfaces: tuple[str, ...]
    metadata: Mapping[str, Any]


@attrs.frozen(kw_only=True)
class Architecture:
    unique_id: str
    nodes: Mapping[str, Mapping[str, Any]]
    relationships: tuple[Relationship, ...]

    def node_type(self, unique_id: str) -> str:
        return str(self.nodes[unique_id].get("node-type", ""))

    def metadata(self, unique_id: str) -> Mapping[str, Any]:
        return metadata_of(self.nodes[unique_id].get("metadata"))

    def interfaces(self, unique_id: str) -> list[Mapping[str, Any]]:
        found = self.nodes[unique_id].get("interfaces")
        return [i for i in found if isinstance(i, Mapping)] if isinstance(found, list) else []

    def connects(self, source: str, destination: str) -> list[Relationship]:
        return [r for r in self.relationships
                if r.kind == "connects" and r.ends == (source, destination)]


def metadata_of(value: object) -> dict[str, Any]:
    """CALM metadata is an object, or a list of objects (merged here, later keys winning)."""
    if isinstance(value, Mapping):
        return {str(k): v for k, v in value.items()}
    merged: dict[str, Any] = {}
    if isinstance(value, list):
        for item in value:
            if isinstance(item, Mapping):
                merged.update({str(k): v for k, v in item.items()})
    return merged


def _strings(value: object) -> tuple[str, ...] | None:
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    return None


def _relationship(at: str, raw: object, errors: list[FieldError]) -> Relationship | None:
    if not isinstance(raw, Mapping) or not isinstance(raw.get("unique-id"), str):
        errors.append(FieldError(at, "must be an object with a string unique-id"))
        return None
    kinds = raw.get("relationship-type")
    named = [k for k in KINDS if isinstance(kinds, Mapping) and k in kinds]
    if len(named) != 1:
        errors.append(FieldError(f"{at}.relationship-type",
                                 f"must be exactly one of {', '.join(KINDS)}"))
        return None
    kind, body = named[0], kinds[named[0]]  # type: ignore[index]
    ends: tuple[str, ...] | None = ()
    interfaces: tuple[str, ...] = ()
    if kind == "connects":
        source = body.get("source") if isinstance(body, Mapping) else None
        target = body.get("destination") if isinstance(body, Mapping) else None
        if (isinstance(source, Mapping) and isinstance(source.get("node"), str)
                and isinstance(target, Mapping) and isinstance(target.get("node"), str)):
            ends = (source["node"], target["node"])
            interfaces = _strings(target.get("interfaces", [])) or ()
        else:
            ends = None
    elif kind in ("interacts", "composed-of"):
        head = "actor" if kind == "interacts" else "container"
        nodes = _strings(body.get("nodes")) if isinstance(body, Mapping) else None
        ends = ((body[head], *nodes) if nodes and isinstance(body, Mapping)
                and isinstance(body.get(head), str) else None)
    if ends is None:
        errors.append(FieldError(f"{at}.relationship-type.{kind}",
                                 "names its nodes wrongly for a " + kind + " relationship"))
        return None
    return Relationship(unique_id=raw["unique-id"], kind=kind, ends=ends,
                        interfaces=interfaces, metadata=metadata_of(raw.get("metadata")))


def read(document: object, what: str = "the architecture") -> Architecture:
    """The nodes and relationships of a CALM document; `InvalidInput` listing every shape
    it cannot read (a node without a unique id, a relationship naming no nodes, ...)."""
    errors: list[FieldError] = []
    if not isinstance(document, Mapping):
        raise InvalidInput(f"{what} is not a CALM architecture",
                           [FieldError("$", "must be a JSON object")])
    raw_nodes = document.get("nodes")
    nodes: dict[str, Mapping[str, Any]] = {}
    if not isinstance(raw_nodes, list):
        errors.append(FieldError("nodes", "must be a list of nodes"))
        raw_nodes = []
    for n, node in enumerate(raw_nodes):
        if not isinstance(node, Mapping) or not isinstance(node.get("unique-id"), str) \
                or not isinstance(node.get("node-type"), str):
            errors.append(FieldError(f"nodes[{n}]", "must be an object with a string "
                                     "unique-id and node-type"))
        elif node["unique-id"] in nodes:
            errors.append(FieldError(f"nodes[{n}].unique-id",
                                     f"{node['unique-id']!r} is the id of another node"))
        else:
            nodes[node["unique-id"]] = node
    raw_relationships = document.get("relationships", [])
    if not isinstance(raw_relationships, list):
        errors.append(FieldError("relationships", "must be a list of relationships"))
        raw_relationships = []
    relationships = []
    for n, raw in enumerate(raw_relationships):
        relationship = _relationship(f"relationships[{n}]", raw, errors)
        if relationship is not None:
            relationships.append(relationship)
    if errors:
        raise InvalidInput(f"{what} is not a CALM architecture", errors)
    unique_id = document.get("unique-id")
    return Architecture(unique_id=unique_id if isinstance(unique_id, str) else "(unnamed)",
                        nodes=nodes, relationships=tuple(relationships))

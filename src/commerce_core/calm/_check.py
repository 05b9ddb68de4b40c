"""Comparing a deployment's CALM document with an intended architecture (`check`)."""

from __future__ import annotations

import ipaddress
import os
import re
import socket
from collections.abc import Mapping
from typing import Any, Literal

import attrs

from commerce_core.calm._read import Architecture, Relationship, read

__all__ = ["CheckReport", "Finding", "check", "rate_per_second"]

Level = Literal["error", "warning", "note"]

#: metadata the check compares (the rest is listed as not checked, but for these)
_QUIET = {"description", "tags", "version", "name", "transport"}
_LATENCY = ("latency-sla-ms", "latency-ms")
_UNITS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
_RATE = re.compile(r"^\s*(\d+)\s*(?:/|per)\s*(\d*)\s*(second|minute|hour|day)s?\s*(.*?)\s*$",
                   re.IGNORECASE)


@attrs.frozen
class Finding:
    """One difference: an ``error`` (the structure is not realised), a ``warning`` (an
    objective the configuration does not meet) or a ``note`` (what differs and is not held
    against the deployment: placeholder hosts, services that run in process)."""

    level: Level
    #: the node or relationship it is about (its unique-id, or ids joined by ", ")
    subject: str
    text: str

    def __str__(self) -> str:
        return f"{_printable(self.subject)}: {_printable(self.text)}"


@attrs.frozen
class CheckReport:
    """What `check` found; ``failed()`` with errors, ``failed(strict=True)`` with warnings
    too."""

    architecture: str
    findings: tuple[Finding, ...]

    def of(self, level: Level) -> list[Finding]:
        return [f for f in self.findings if f.level == level]

    @property
    def errors(self) -> list[Finding]:
        return self.of("error")

    @property
    def warnings(self) -> list[Finding]:
        return self.of("warning")

    @property
    def notes(self) -> list[Finding]:
        return self.of("note")

    def failed(self, *, strict: bool = False) -> bool:
        return bool(self.errors or (strict and self.warnings))

    def render(self, *, strict: bool = False) -> str:
        """The report as a readable list: errors, warnings, notes, then the verdict."""
        heads = {"error": "ERRORS: the deployment does not realise the architecture",
                 "warning": "WARNINGS: objectives the configuration does not meet"
                            + (" (--strict: they fail the check)" if strict else
                               " (--strict fails on them)"),
                 "note": "NOTES: differences not held against the deployment"}
        lines = [f"checked against {_printable(self.architecture)}"]
        levels: tuple[Level, ...] = ("error", "warning", "note")
        for level in levels:
            found = self.of(level)
            if found:
                lines.append("")
                lines.append(heads[level])
                lines.extend(f"  - {finding}" for finding in found)
        counts = (f"{len(self.errors)} error(s), {len(self.warnings)} warning(s), "
                  f"{len(self.notes)} note(s)")
        lines.append("")
        lines.append(("FAILED: " if self.failed(strict=strict) else "PASSED: ") + counts)
        return "\n".join(lines)


def _printable(text: str, limit: int = 300) -> str:
    """Text from a document as it may be printed: control characters (a newline, a
    terminal's escape) escaped, so that no id can forge a line of the report; cut short."""
    shown = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return shown if len(shown) <= limit else shown[:limit] + "..."


def parse_rate(text: object) -> tuple[int, int, str, str] | None:
    """``5 per 10 Minutes per principal`` → (5, 10, "minute", "per principal"): amount,
    multiple, unit and whom it counts; ``None`` for what is not a rate (``limits``
    notation: ``20/minute``, ``5 per 10 seconds``)."""
    found = _RATE.match(text) if isinstance(text, str) else None
    if found is None:
        return None
    amount, multiple, unit, rest = found.groups()
    return int(amount), int(multiple) if multiple else 1, unit.lower(), rest.lower()


def rate_per_second(text: str) -> tuple[float, str] | None:
    """``100/second per principal`` → (100.0, "per principal"); ``None`` for what is not a
    rate."""
    parsed = parse_rate(text)
    if parsed is None:
        return None
    amount, multiple, unit, whom = parsed
    seconds = _UNITS[unit] * multiple
    return amount / seconds if seconds else 0.0, whom


#: names of this machine's loopback interface
_LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}


def address_of(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """An IP address however it is written (``127.1``, ``127.000.000.001`` and
    ``::ffff:127.0.0.1`` are 127.0.0.1, as the C library reads them); ``None`` for a name."""
    text = host.strip().strip("[]")
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        if not re.fullmatch(r"(0x[0-9a-f]+|[0-9]+)(\.(0x[0-9a-f]+|[0-9]+)){0,3}", text, re.I):
            return None
        try:
            return ipaddress.IPv4Address(socket.inet_aton(text))
        except OSError:
            return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def is_local(host: str) -> bool:
    """Whether a host is this machine (a loopback name or address, or the unspecified
    address, which a client reaches as this machine)."""
    text = host.strip().lower().rstrip(".")
    if text in _LOCAL_NAMES:
        return True
    address = address_of(text)
    return address is not None and (address.is_loopback or address.is_unspecified)


def _host(host: object) -> str:
    """A server's host, written one way: every name and address of this machine (and the
    Unix sockets of its servers) is ``loopback``."""
    text = str(host).strip().lower().rstrip(".")
    if not text or text.startswith("/") or is_local(text):
        return "loopback"
    address = address_of(text)
    return text if address is None else str(address)


def _where(interfaces: list[Mapping[str, Any]]) -> tuple[Any, ...] | None:
    """Where a database really is: its file, or its server and database (a schema inside
    a database is not a database of its own); ``None`` when it has no such interface."""
    for interface in interfaces:
        if isinstance(interface.get("path"), str) and "host" not in interface:
            return ("file", os.path.realpath(interface["path"]))
        if isinstance(interface.get("host"), str) or "database" in interface:
            # no host: the local server's default Unix socket
            return ("server", _host(interface.get("host", "")), str(interface.get("port", "")),
                    str(interface.get("database", "")))
    return None


def _shown(where: tuple[Any, ...], interfaces: list[Mapping[str, Any]]) -> str:
    """Where a database is, as the deployment's document says it (a file's path as
    configured, not as resolved)."""
    if where[0] == "file":
        return "the file " + next(str(i["path"]) for i in interfaces if "path" in i)
    host = "localhost" if where[1] == "loopback" else where[1]
    return f"{host}:{where[2]}/{where[3]}".replace(":/", "/")


def _address(interface: Mapping[str, Any]) -> str:
    parts = [str(interface.get("protocol", "")).upper()]
    if "host" in interface:
        parts.append(f"{interface['host']}" + (f":{interface['port']}" if "port" in
                                              interface else ""))
    for key in ("database", "path"):
        if key in interface:
            parts.append(f"{key} {interface[key]}")
    return " ".join(p for p in parts if p)


class _Checker:
    def __init__(self, intended: Architecture, deployed: Architecture) -> None:
        self.intended = intended
        self.deployed = deployed
        self.findings: list[Finding] = []
        # the deployment's relationships by id, by kind and ends, and what each actor and
        # container covers (so that the check is linear in the documents' size)
        self.by_id: dict[str, Relationship] = {}
        self.by_ends: dict[tuple[str, ...], list[Relationship]] = {}
        self.covered: dict[tuple[str, str], set[str]] = {}
        for relationship in deployed.relationships:
            self.by_id.setdefault(relationship.unique_id, relationship)
            self.by_ends.setdefault((relationship.kind, *relationship.ends), []).append(
                relationship)
            if relationship.kind in ("interacts", "composed-of"):
                self.covered.setdefault((relationship.kind, relationship.ends[0]),
                                        set()).update(relationship.ends[1:])

    def add(self, level: Level, subject: str, text: str) -> None:
        self.findings.append(Finding(level, subject, text))

    def run(self) -> list[Finding]:
        realised = self.nodes()
        self.separate_databases(realised)
        for relationship in self.intended.relationships:
            self.relationship(relationship)
        for node in realised:
            self.node_objectives(node)
            self.interfaces(node)
        return self.findings

    # structure -------------------------------------------------------------------------

    def nodes(self) -> list[str]:
        realised = []
        for unique_id in self.intended.nodes:
            kind = self.intended.node_type(unique_id)
            if unique_id not in self.deployed.nodes:
                self.add("error", unique_id, f"the architecture's {kind} is not realised: "
                         "the deployment has no node of that id")
            elif self.deployed.node_type(unique_id) != kind:
                self.add("error", unique_id, f"the architecture's {kind} is realised as a "
                         f"{self.deployed.node_type(unique_id)}")
            else:
                realised.append(unique_id)
        return realised

    def separate_databases(self, realised: list[str]) -> None:
        where: dict[tuple[Any, ...], list[str]] = {}
        for unique_id in realised:
            if self.intended.node_type(unique_id) == "database":
                found = _where(self.deployed.interfaces(unique_id))
                if found is not None:
                    where.setdefault(found, []).append(unique_id)
        for found, ids in where.items():
            if len(ids) > 1:
                shown = _shown(found, self.deployed.interfaces(ids[0]))
                self.add("error", ", ".join(ids), "the architecture keeps these databases "
                         f"separate, but the deployment puts them in one: {shown}")

    def relationship(self, intended: Relationship) -> None:
        if intended.kind == "connects":
            self.connects(intended)
        elif intended.kind in ("interacts", "composed-of"):
            head, *members = intended.ends
            covered = self.covered.get((intended.kind, head), set())
            missing = [m for m in members if m not in covered]
            if missing:
                verb = "interacts with" if intended.kind == "interacts" else "is composed of"
                self.add("error", intended.unique_id, f"in the deployment, {head} {verb} "
                         f"no {', '.join(missing)}")
        else:
            self.add("note", intended.unique_id,
                     f"a {intended.kind} relationship: not checked")

    def connects(self, intended: Relationship) -> None:
        source, destination = intended.ends
        deployed = self.by_id.get(intended.unique_id)
        if deployed is None or deployed.kind != "connects" or deployed.ends != intended.ends:
            by_ends = self.by_ends.get(("connects", source, destination), [])
            if not by_ends:
                self.add("error", intended.unique_id, f"{source} connects to {destination} "
                         "in the architecture, not in the deployment")
                return
            deployed = by_ends[0]
        self.connection_objectives(intended, deployed)

    # objectives -----------------------------------------------------------------------

    def connection_objectives(self, intended: Relationship, deployed: Relationship) -> None:
        subject = intended.unique_id
        have = deployed.metadata
        retry = have.get("retry") if isinstance(have.get("retry"), Mapping) else None
        for key, wanted in intended.metadata.items():
            if key in _LATENCY:
                if not isinstance(wanted, int | float) or isinstance(wanted, bool):
                    self.add("warning", subject, f"{key} {wanted!r} is not a number of ms")
                elif retry is not None and _number(retry.get("total-ms")) > wanted:
                    total = retry.get("total-ms")
                    self.add("warning", subject, f"latency objective {wanted} ms, but its "
                             + (f"retries may take up to {total} ms "
                                f"({retry.get('attempts')} attempts)"
                                if isinstance(total, int | float) else
                                "retries have no total time that bounds them"))
                elif retry is None and have.get("transport") != "in-process call":
                    self.add("warning", subject, f"latency objective {wanted} ms: nothing in "
                             "the configuration bounds how long a call takes")
            elif key == "pool-size":
                pool = have.get("pool-size")
                if not isinstance(pool, int):
                    transport = have.get("transport", "not stated")
                    self.add("warning", subject, f"pool-size {wanted}: the deployment keeps no "
                             f"pool of server connections here ({transport})")
                elif not isinstance(wanted, int) or pool < wanted:
                    self.add("warning", subject, f"pool-size {wanted} intended, {pool} "
                             "connections per process configured")
            elif key == "retry":
                self.retry_objective(subject, wanted, retry)
            elif key not in _QUIET:
                self.add("note", subject, f"{key} {wanted!r}: not checked")

    def retry_objective(self, subject: str, wanted: object, retry: Mapping[str, Any] | None,
                        ) -> None:
        if retry is None:
            self.add("warning", subject, f"retry {wanted!r} intended, the deployment does not "
                     "retry here")
        elif isinstance(wanted, str):
            strategy = str(retry.get("strategy", "")).lower()
            if not all(word in strategy for word in wanted.lower().split()):
                self.add("warning", subject, f"retry {wanted!r} intended, "
                         f"{retry.get('strategy')!r} configured")
        elif isinstance(wanted, Mapping):
            for key, value in wanted.items():
                if retry.get(key) != value:
                    self.add("warning", subject, f"retry {key} {value!r} intended, "
                             f"{retry.get(key)!r} configured")
        else:
            self.add("warning", subject, f"retry {wanted!r}: not a strategy it can compare")

    def node_objectives(self, unique_id: str) -> None:
        have = self.deployed.metadata(unique_id)
        for key, wanted in self.intended.metadata(unique_id).items():
            if key == "rate-limit":
                self.rate_limit(unique_id, wanted, have)
            elif key == "engine":
                engine = str(have.get("engine", "not stated"))
                if _family(wanted) != _family(engine):
                    self.add("warning", unique_id, f"engine {wanted} intended, {engine} "
                             "configured")
                elif str(wanted).strip().lower() != engine.strip().lower():
                    self.add("note", unique_id, f"engine {wanted}: the version is not "
                             f"checked (the description does not connect to {engine})")
            elif key == "pool-size":
                self.add("note", unique_id, "pool-size is compared on the relationships "
                         "that connect to it")
            elif key not in _QUIET:
                shown = f"{have[key]!r} deployed" if key in have else "not stated"
                if have.get(key) != wanted:
                    self.add("note", unique_id, f"{key} {wanted!r} intended, {shown}: "
                             "not checked")

    def rate_limit(self, unique_id: str, wanted: object, have: Mapping[str, Any]) -> None:
        intended = rate_per_second(wanted) if isinstance(wanted, str) else None
        if intended is None:
            self.add("warning", unique_id, f"rate-limit {wanted!r} is not a rate such as "
                     "100/second per principal")
            return
        configured = have.get("rate-limit")
        deployed = rate_per_second(configured) if isinstance(configured, str) else None
        if deployed is None:
            self.add("warning", unique_id, f"rate-limit {wanted} intended, none configured")
            return
        (want, whose), (rate, counted) = intended, deployed
        if abs(want - rate) > 1e-9:
            more = "more" if rate > want else "fewer"
            self.add("warning", unique_id, f"rate-limit {wanted} intended, {configured} "
                     f"configured ({more} requests let through)")
        if counted != whose:
            workers = have.get("workers")
            self.add("warning", unique_id, f"rate-limit counted {counted or 'overall'}, "
                     f"intended {whose or 'overall'}"
                     + (f": each of the {workers} workers counts on its own, so a "
                        f"principal may make {workers} times as many requests; share a "
                        "rate-limit storage" if "per worker" in counted else ""))

    # interfaces ---------------------------------------------------------------------

    def interfaces(self, unique_id: str) -> None:
        intended = self.intended.interfaces(unique_id)
        deployed = self.deployed.interfaces(unique_id)
        for interface in intended:
            shown = _address(interface)
            if not deployed:
                how = self.deployed.metadata(unique_id).get("deployment-type")
                self.add("note", unique_id, f"interface {interface.get('unique-id')} "
                         f"({shown}) is not served"
                         + (f": the deployment runs it as an {how}" if how else ""))
                continue
            match = next((d for d in deployed if d.get("unique-id") ==
                          interface.get("unique-id")), deployed[0])
            wanted, served = (str(i.get("protocol", "")).upper() for i in (interface, match))
            if wanted == "HTTPS" and served == "HTTP":
                self.add("warning", unique_id, f"interface {interface.get('unique-id')} is "
                         "HTTPS in the architecture, and the deployment serves HTTP (right "
                         "only behind a proxy that terminates TLS)")
            differs = [key for key in ("host", "port", "database", "path")
                       if key in interface and str(interface[key]).lower() !=
                       str(match.get(key, "")).lower()]
            if differs:
                self.add("note", unique_id, f"interface {interface.get('unique-id')} is "
                         f"{shown} in the architecture, {_address(match)} in the deployment")


def _number(value: object) -> float:
    return float(value) if isinstance(value, int | float) else float("inf")


def _family(engine: object) -> str:
    word = (str(engine).strip().split() or [""])[0].lower()
    return "mysql" if word in ("mysql", "mariadb") else word


def check(intended: object, deployed: object) -> CheckReport:
    """Compare a deployment's document (`describe`'s) with an intended architecture (such
    as the client's): every intended node realised with its node type; databases the
    architecture keeps apart in separate databases (another file, server or database: a
    schema is not enough); every connects relationship present (by its id, or between the
    same two nodes), interacts and composed-of covered. A difference there is an
    ``error``. The objectives in the relationships' and nodes' metadata (``latency-sla-ms``
    against the retries' total time, ``pool-size``, ``retry``, ``rate-limit``, ``engine``)
    that the configuration does not meet are ``warning``s; placeholder interfaces,
    services run in process and metadata it cannot check are ``note``s.

    `InvalidInput` when either document cannot be read as CALM (validate it against
    `meta_schemas` first for the schema's own words)."""
    architecture = read(intended, "the intended architecture")
    findings = _Checker(architecture, read(deployed, "the deployment's document")).run()
    return CheckReport(architecture.unique_id, tuple(findings))

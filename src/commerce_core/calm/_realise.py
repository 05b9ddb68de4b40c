"""Running from an architecture: the settings a CALM document names (`realise`)."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlencode

import attrs

from commerce_core.calm._check import address_of, is_local, parse_rate
from commerce_core.calm._read import Architecture, read
from commerce_core.errors import FieldError, InvalidInput

__all__ = ["Credentials", "Listen", "Realisation", "realise"]

#: user and password of a node, from the host's secrets (never from the document)
Credentials = tuple[str | None, str | None]

#: the SQLAlchemy URL scheme (with the driver the first-party adapters install) of each
#: database engine an architecture may name, by protocol or by its ``engine`` metadata
SQL_SCHEMES = {"postgresql": "postgresql+psycopg", "postgres": "postgresql+psycopg",
               "mysql": "mysql+pymysql", "mariadb": "mariadb+pymysql", "sqlite": "sqlite"}
_NAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.\-_]{0,252})")
_DATABASE = re.compile(r"[A-Za-z0-9_\-$]{1,64}")
_NUMERIC = re.compile(r"[0-9.xXa-fA-F]+")


@attrs.frozen(kw_only=True)
class Listen:
    """Where the gateway is served: ``protocol`` HTTP or HTTPS, the address to bind
    (``host``: the interface's address, or every address for a host name) and ``port``."""

    protocol: str
    host: str
    port: int
    #: the name clients reach it by, as the architecture says it
    public_host: str


@attrs.frozen(kw_only=True)
class Realisation:
    """What an architecture sets: the stores' URLs (credentials put in from the host's
    secrets), where the gateway listens, its rate limit and rate-limit storage, the event
    broker and the number of workers; ``None`` for what it does not say."""

    orders_url: str
    inventory_url: str
    gateway: Listen | None = None
    rate_limit: str | None = None
    rate_limit_storage_url: str | None = None
    broker_url: str | None = None
    workers: int | None = None


class _Realiser:
    def __init__(self, architecture: Architecture,
                 credentials: Mapping[str, Credentials]) -> None:
        self.a = architecture
        self.credentials = credentials
        self.errors: list[FieldError] = []

    def fail(self, at: str, text: str) -> None:
        self.errors.append(FieldError(at, text))

    def interface(self, node: str, source: str | None, *keys: str,
                  ) -> Mapping[str, Any] | None:
        """The interface a service connects to (the relationship names it), else the
        node's first with one of ``keys``."""
        interfaces = self.a.interfaces(node)
        named = [name for r in (self.a.connects(source, node) if source else [])
                 for name in r.interfaces]
        for interface in interfaces:
            if interface.get("unique-id") in named:
                return interface
        return next((i for i in interfaces if any(k in i for k in keys)), None)

    def address(self, at: str, interface: Mapping[str, Any]) -> tuple[str, int | None] | None:
        host, port = interface.get("host"), interface.get("port")
        text = host[1:-1] if isinstance(host, str) and host[:1] + host[-1:] == "[]" else host
        if not isinstance(text, str) or not (_canonical_ip(text) or (
                _NAME.fullmatch(text) and not (_NUMERIC.fullmatch(text) and "." in text
                                               and address_of(text) is not None))):
            self.fail(f"{at}.host", f"must be a host name or an address written in full "
                      f"(no zone), not {host!r}")
            return None
        if port is not None and (not isinstance(port, int) or isinstance(port, bool)
                                 or not 1 <= port <= 65535):
            self.fail(f"{at}.port", f"must be a port from 1 to 65535, not {port!r}")
            return None
        return (f"[{text}]" if ":" in text else text), port

    def userinfo(self, node: str) -> str:
        user, password = self.credentials.get(node, (None, None))
        if not user and not password:
            return ""
        return quote(user or "", safe="") + (f":{quote(password, safe='')}" if password
                                              else "") + "@"

    def database(self, node: str, service: str) -> str | None:
        at = f"nodes.{node}"
        if node not in self.a.nodes or self.a.node_type(node) != "database":
            store = service.split("-", maxsplit=1)[0]
            self.fail(at, f"the architecture has no database {node}: the {store} store has "
                      "nowhere to go" if node not in self.a.nodes else
                      f"must be a database, not a {self.a.node_type(node)!r}")
            return None
        interface = self.interface(node, service, "host", "path")
        engine = str(self.a.metadata(node).get("engine", "")).strip().lower()
        if interface is None:
            if engine.startswith("in-process memory") or engine == "memory":
                return "memory://"
            self.fail(f"{at}.interfaces", "names no host or file to reach the database by")
            return None
        at = f"{at}.interfaces.{interface.get('unique-id')}"
        protocol = str(interface.get("protocol", "")).strip().lower()
        by_engine = SQL_SCHEMES.get((engine.split() or [""])[0])
        scheme = SQL_SCHEMES.get(protocol) or by_engine
        if scheme is not None and by_engine is not None and scheme != by_engine \
                and {scheme, by_engine} != {"mysql+pymysql", "mariadb+pymysql"}:
            self.fail(at, f"its protocol {interface.get('protocol')!r} and the node's engine "
                      f"{engine!r} name two databases")
        elif scheme is None:
            self.fail(at, f"a {interface.get('protocol')!r} database of engine "
                      f"{engine or 'not stated'!r} is not one the stores serve (PostgreSQL, "
                      "MySQL, MariaDB, SQLite): say it in the node's metadata engine")
        elif scheme == "sqlite":
            path = interface.get("path")
            if isinstance(path, str) and path.strip() and path.isprintable() \
                    and path != ":memory:" and not path.startswith("file:"):
                # the URL's database is percent-decoded: a % # ? in a file name stays one
                return f"sqlite:///{quote(path, safe='/')}"
            self.fail(f"{at}.path", "a SQLite database needs the path of its file")
        else:
            return self.server_database(at, scheme, interface, node, service)
        return None

    def server_database(self, at: str, scheme: str, interface: Mapping[str, Any], node: str,
                        service: str) -> str | None:
        found = self.address(at, interface)
        name = interface.get("database")
        if not isinstance(name, str) or not _DATABASE.fullmatch(name):
            self.fail(f"{at}.database", f"must name the database (letters, digits, _ - $), "
                      f"not {name!r}")
            return None
        query: dict[str, str] = {}
        schema = interface.get("schema")
        if schema is not None and not scheme.startswith("postgresql"):
            self.fail(f"{at}.schema", "a schema is for a PostgreSQL database")
        elif schema is not None:
            if not isinstance(schema, str) or not _DATABASE.fullmatch(schema):
                self.fail(f"{at}.schema", f"must be a schema name, not {schema!r}")
            query["schema"] = str(schema)
        pools = [r.metadata.get("pool-size") for r in self.a.connects(service, node)]
        pool = next((p for p in pools if p is not None), None)
        if pool is not None:
            if not isinstance(pool, int) or isinstance(pool, bool) or not 1 <= pool <= 1000:
                self.fail(f"relationships.{service}-to-{node}.metadata.pool-size",
                          f"must be a whole number from 1 to 1000, not {pool!r}")
            query["pool_size"] = str(pool)
        if found is None:
            return None
        host, port = found
        return (f"{scheme}://{self.userinfo(node)}{host}{f':{port}' if port else ''}/{name}"
                + (f"?{urlencode(query)}" if query else ""))

    def gateway(self) -> Listen | None:
        if "api-gateway" not in self.a.nodes:
            return None
        web = [i for i in self.a.interfaces("api-gateway")
               if str(i.get("protocol", "")).upper() in ("HTTP", "HTTPS")]
        if not web:
            return None
        interface = web[0]
        at = f"nodes.api-gateway.interfaces.{interface.get('unique-id')}"
        path = interface.get("path", "/v1")
        if path not in ("/v1", "/v1/"):
            self.fail(f"{at}.path", f"the gateway serves its API at /v1, not {path!r} (a "
                      "proxy in front may map another path to it)")
        found = self.address(at, interface)
        if found is None:
            return None
        host, port = found
        protocol = str(interface["protocol"]).upper()
        bind = host.strip("[]")
        if is_local(bind) and not _canonical_ip(bind):
            bind = "127.0.0.1"
        elif not _canonical_ip(bind):
            # a name is how clients reach it (a DNS name, a container's name): listen on
            # every address, at its port
            bind = "0.0.0.0"  # noqa: S104
        return Listen(protocol=protocol, host=bind,
                      port=port or (443 if protocol == "HTTPS" else 80),
                      public_host=host.strip("[]"))

    def gateway_setting(self, key: str) -> object:
        """The gateway node's metadata ``key`` (``None``: not stated, or no gateway)."""
        return self.a.metadata("api-gateway").get(key) if "api-gateway" in self.a.nodes \
            else None

    def rate_limit(self) -> str | None:
        text = self.gateway_setting("rate-limit")
        if text is None:
            return None
        parsed = parse_rate(text)
        if parsed is None or parsed[0] <= 0 or parsed[3] not in (
                "", "per principal", "per principal per worker"):
            self.fail("nodes.api-gateway.metadata.rate-limit", f"must be a rate per "
                      f"principal such as '100/second per principal', not {text!r}")
            return None
        amount, multiple, unit, _ = parsed  # written as ``limits`` reads it
        return f"{amount}/{f'{multiple} {unit}s' if multiple > 1 else unit}"

    def service_url(self, node: str, schemes: tuple[str, ...], source: str) -> str | None:
        if node not in self.a.nodes:
            return None
        interface = self.interface(node, source, "host")
        at = f"nodes.{node}"
        engine = str(self.a.metadata(node).get("engine", "")).strip().lower()
        scheme = schemes[0]
        if node == "rate-limit-storage" and engine not in schemes:
            self.fail(f"{at}.metadata.engine", f"the rate limits are kept in Redis, not "
                      f"{engine or 'an engine not stated'!r}")
            return None
        if node == "rate-limit-storage":
            scheme = engine
        if interface is None:
            self.fail(f"{at}.interfaces", "names no host to reach it by")
            return None
        found = self.address(f"{at}.interfaces.{interface.get('unique-id')}", interface)
        if found is None:
            return None
        host, port = found
        path = ""
        if node == "rate-limit-storage" and interface.get("database") is not None:
            path = f"/{interface['database']}"
            if not (str(interface["database"]).isascii()
                    and str(interface["database"]).isdigit()):
                self.fail(f"{at}.database", "a Redis database is a number")
        elif node == "event-broker" and isinstance(interface.get("virtual-host"), str):
            path = "/" + quote(interface["virtual-host"], safe="")
        return f"{scheme}://{self.userinfo(node)}{host}{f':{port}' if port else ''}{path}"

    def workers(self) -> int | None:
        workers = self.gateway_setting("workers")
        if workers is None:
            return None
        if not isinstance(workers, int) or isinstance(workers, bool) or not 1 <= workers <= 64:
            self.fail("nodes.api-gateway.metadata.workers",
                      f"must be a whole number from 1 to 64, not {workers!r}")
            return None
        return workers


def _canonical_ip(text: str) -> bool:
    """An IP address as Python writes it (no zone, no ``127.1``)."""
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return False
    return "%" not in text and (":" in text or str(address) == text)


def realise(architecture: object, *,
            credentials: Mapping[str, Credentials] | None = None) -> Realisation:
    """The settings an architecture names: each store's database from its node
    (``order-database``, ``inventory-database``: the interface the service's connects
    relationship names, or the node's first; its engine by the interface's protocol or the
    node's ``engine`` metadata, so ``JDBC`` with ``PostgreSQL 15`` is PostgreSQL; the
    relationship's ``pool-size`` as the URL's ``pool_size``), the gateway's HTTP(S)
    interface and ``rate-limit``, and, if the architecture has them, the
    ``rate-limit-storage`` (Redis) and the ``event-broker`` (AMQP). Users and passwords come
    from ``credentials``, by node id, never from the document.

    `InvalidInput` listing every part it cannot realise (a database engine no store serves,
    a host that is no host name, a gateway path other than ``/v1``, ...)."""
    parsed = read(architecture)
    realiser = _Realiser(parsed, credentials or {})
    orders = realiser.database("order-database", "order-service")
    inventory = realiser.database("inventory-database", "inventory-service")
    realisation = Realisation(
        orders_url=orders or "", inventory_url=inventory or "", gateway=realiser.gateway(),
        rate_limit=realiser.rate_limit(),
        rate_limit_storage_url=realiser.service_url("rate-limit-storage", ("redis", "rediss"),
                                                    "api-gateway"),
        broker_url=realiser.service_url("event-broker", ("amqp",), "order-service"),
        workers=realiser.workers())
    if realiser.errors:
        raise InvalidInput("the architecture cannot be realised", realiser.errors)
    return realisation

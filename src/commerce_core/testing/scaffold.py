"""Skeletons of adapters: ``python -m commerce_core.testing.scaffold KIND NAME``.

KIND is ``payment-gateway``, ``inventory-store`` or ``order-store``; NAME the distribution's
name (``acme-pay``). It writes a small installable package (hatchling, the adapter
registered under a URL scheme, a test file running the conformance suites)::

    acme-pay/
        pyproject.toml
        README.md
        src/acme_pay/__init__.py     every port method, raising NotImplementedError
        tests/test_conformance.py    the suites, a few lines (the pytest plugin's fixtures)

Install it (``pip install -e 'acme-pay[test]'``) and run ``pytest``: the suites run, and
the summary lists the methods still to write. The stores are built on the standard
library's ``sqlite3`` (one file per store, ``BEGIN IMMEDIATE`` transactions) with the
outbox and batch methods of `commerce_core.kit` already in place; swap the driver for your
database's. The methods are generated from the ports themselves, with their docstrings.
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import keyword
import re
import sys
import textwrap
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, entry_points, version
from pathlib import Path
from typing import Any

from commerce_core.inventory import ports as inventory_ports
from commerce_core.orders import ports as order_ports
from commerce_core.payments import ports as payment_ports

__all__ = ["KINDS", "Names", "main", "render", "scaffold"]

KINDS = ("payment-gateway", "inventory-store", "order-store")

_GROUPS = {"payment-gateway": "commerce_core.payment_gateways",
           "inventory-store": "commerce_core.inventory_stores",
           "order-store": "commerce_core.order_stores"}
_SUFFIX = {"payment-gateway": "Gateway", "inventory-store": "InventoryStore",
           "order-store": "OrderStore"}

#: the repositories of each store: (attribute of the unit of work, port, mixin of
#: `commerce_core.kit` that supplies its batch methods)
_REPOSITORIES: dict[str, list[tuple[str, type, str | None]]] = {
    "inventory-store": [
        ("products", inventory_ports.ProductRepository, "ProductBatchDefaults"),
        ("warehouses", inventory_ports.WarehouseRepository, None),
        ("stock", inventory_ports.StockRepository, "StockBatchDefaults"),
        ("reservations", inventory_ports.ReservationRepository, None),
        ("movements", inventory_ports.MovementRepository, None),
    ],
    "order-store": [
        ("orders", order_ports.OrderRepository, None),
        ("payments", order_ports.PaymentRepository, "PaymentBatchDefaults"),
        ("idempotency", order_ports.IdempotencyRepository, None),
        ("notifications", order_ports.NotificationRepository, None),
        ("redemptions", order_ports.RedemptionRepository, None),
    ],
}
#: what the kit's mixins define (not generated)
_SUPPLIED = {"ProductBatchDefaults": {"get_many", "add_many"},
             "PaymentBatchDefaults": {"get_many"}, "StockBatchDefaults": {"update_many"}}

_IMPORTS = {
    "payment-gateway": """\
from commerce_core.errors import PaymentDeclined, PaymentUnavailable  # noqa: F401
from commerce_core.money import Money
from commerce_core.payments.ports import GatewayAuthorization
""",
    "inventory-store": """\
import sqlite3
from collections.abc import Collection, Sequence
from datetime import datetime
from types import TracebackType
from typing import Self

from commerce_core.errors import (  # noqa: F401  (what the methods raise)
    ConcurrencyConflict,
    Conflict,
    StoreError,
    TransientStoreError,
)
from commerce_core.inventory.model import (
    Product,
    Reservation,
    StockLevel,
    StockMovement,
    Warehouse,
)
from commerce_core.kit import (
    DbApiOutbox,
    ProductBatchDefaults,
    StockBatchDefaults,
    outbox_schema,
)
""",
    "order-store": """\
import sqlite3
from collections.abc import Collection, Sequence
from datetime import datetime
from types import TracebackType
from typing import Self

from commerce_core.errors import (  # noqa: F401  (what the methods raise)
    ConcurrencyConflict,
    Conflict,
    StoreError,
    TransientStoreError,
)
from commerce_core.kit import DbApiOutbox, PaymentBatchDefaults, outbox_schema
from commerce_core.orders.model import IdempotencyRecord, Order, OrderStatus
from commerce_core.payments.model import Payment
""",
}


class Names:
    """The names a skeleton is written under, from the distribution's name."""

    def __init__(self, kind: str, name: str, scheme: str | None = None) -> None:
        if kind not in KINDS:
            raise ValueError(f"kind {kind!r}: one of {', '.join(KINDS)}")
        if len(name) > 64 or not re.fullmatch(r"[A-Za-z][A-Za-z0-9]*(?:[-_][A-Za-z0-9]+)*",
                                              name):
            raise ValueError(f"name {name!r}: up to 64 letters and digits, words joined by "
                             "- or _ (acme-pay)")
        self.kind = kind
        self.distribution = name.lower().replace("_", "-")
        self.module = name.lower().replace("-", "_")
        words = re.split(r"[-_]", name)
        stem = "".join(word[:1].upper() + word[1:] for word in words)
        # fakepay-gateway -> FakepayGateway, acme -> AcmeGateway
        self.cls = stem if stem.endswith(_SUFFIX[kind]) else stem + _SUFFIX[kind]
        if keyword.iskeyword(self.module) or self.module in sys.stdlib_module_names \
                or self.module.startswith("commerce_core") \
                or importlib.util.find_spec(self.module) is not None:
            raise ValueError(f"name {name!r}: its module {self.module!r} is a Python keyword "
                             "or a module that exists already (it would shadow it)")
        self.scheme = re.sub(r"[^a-z0-9]", "", name.lower()) if scheme is None else scheme
        if not re.fullmatch(r"[a-z][a-z0-9.-]*", self.scheme):
            raise ValueError(f"scheme {self.scheme!r}: a lowercase letter, then letters, "
                             "digits, . or -")
        self.group = _GROUPS[kind]
        taken = entry_points(group=self.group, name=self.scheme)
        if taken:
            raise ValueError(f"scheme {self.scheme!r} is taken in {self.group} by "
                             f"{', '.join(e.value for e in taken)}: choose another (--scheme)")


def _annotation(value: Any) -> str:
    return value if isinstance(value, str) else inspect.formatannotation(value)


def _signature(function: Any) -> str:
    """A method's signature as written in its port (the annotations are strings there)."""
    signature = inspect.signature(function)
    parts: list[str] = []
    star = False
    for parameter in signature.parameters.values():
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY and not star:
            parts.append("*")
            star = True
        text = parameter.name
        if parameter.annotation is not inspect.Parameter.empty:
            text += f": {_annotation(parameter.annotation)}"
        if parameter.default is not inspect.Parameter.empty:
            text += f" = {parameter.default!r}"
        parts.append(text)
    returns = ""
    if signature.return_annotation is not inspect.Signature.empty:
        returns = f" -> {_annotation(signature.return_annotation)}"
    one_line = f"({', '.join(parts)}){returns}"
    if len(one_line) <= 80:
        return one_line
    listed = "".join(f"\n    {part}," for part in parts)  # the stub indents it once more
    return f"({listed}\n){returns}"


def _methods(port: type, skip: frozenset[str] | set[str] = frozenset()) -> list[tuple[str, Any]]:
    return [(name, member) for name, member in vars(port).items()
            if inspect.isfunction(member) and not name.startswith("_") and name not in skip]


def _stub(name: str, function: Any, indent: str = "    ") -> str:
    doc = inspect.getdoc(function)
    lines = [f"def {name}{_signature(function)}:"]
    if doc:
        body = textwrap.indent(doc, "    ")
        lines.append(f'    """{body.strip()}\n    """' if "\n" in doc else f'    """{doc}"""')
    lines.append("    raise NotImplementedError")
    return textwrap.indent("\n".join(lines), indent)


def _repository(attribute: str, port: type, mixin: str | None) -> str:
    skip = _SUPPLIED.get(mixin or "", set())
    name = "_" + attribute.capitalize()
    base = f"({mixin})" if mixin else ""
    own = port.__dict__.get("__doc__")  # its own: a Protocol's would be inherited
    doc = (own or f"``uow.{attribute}``: the `{port.__name__}` port.").strip().splitlines()[0]
    methods = "\n\n".join(_stub(method, fn) for method, fn in _methods(port, skip))
    supplied = (f"    # {', '.join(sorted(skip))}: from commerce_core.kit.{mixin}, built on "
                "the single ones\n\n") if skip else ""
    return (f"class {name}{base}:\n    \"\"\"{doc}\"\"\"\n\n"
            "    def __init__(self, cursor: sqlite3.Cursor) -> None:\n"
            "        self.cursor = cursor\n\n"
            f"{supplied}{methods}\n")


_STORE = '''
class _UnitOfWork:
    """One transaction: ``BEGIN IMMEDIATE`` takes SQLite's write lock at once, so writers
    are serialised (what the inventory suite's reservation race needs of a store without
    row locks) and a busy database is waited for (``timeout``), then reported as
    `TransientStoreError` (the library runs the transaction again)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.connection: sqlite3.Connection | None = None
        self.committed = False

    def __enter__(self) -> Self:
        connection = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            connection.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            connection.close()
            raise TransientStoreError(f"the database is busy: {{exc}}") from exc
        self.connection = connection
        cursor = connection.cursor()
{repositories}
        self.outbox = DbApiOutbox(cursor)
        return self

    def commit(self) -> None:
        assert self.connection is not None, "commit() outside the with block"
        try:
            self.connection.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            raise TransientStoreError(f"the commit failed: {{exc}}") from exc
        self.committed = True

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        connection, self.connection = self.connection, None
        if connection is None:
            return
        try:
            if not self.committed:
                connection.execute("ROLLBACK")
        finally:
            connection.close()


class {cls}:
    """{title}, on one SQLite file: ``{scheme}:///path/to/file.db``."""

    def __init__(self, path: str) -> None:
        self.path = path
        with sqlite3.connect(path) as connection:
            for statement in [*SCHEMA, *outbox_schema("sqlite")]:
                connection.execute(statement)

    @classmethod
    def from_url(cls, url: str) -> {cls}:
        """The factory the ``{scheme}`` entry point names: the whole URL, as
        `Platform.from_urls` is given it."""
        scheme, _, path = url.partition("://")
        if not path.startswith("/") or path == "/":
            raise StoreError(f"{{url!r}}: write {scheme}:///path/to/file.db")
        return cls(path)

    def unit_of_work(self) -> _UnitOfWork:
        return _UnitOfWork(self.path)

    def close(self) -> None:
        """Nothing is held between units of work."""
'''

_GATEWAY = '''
class {cls}:
    """A payment gateway for the provider behind ``{scheme}://``.

    The rules every method follows are the port's (`commerce_core.payments.ports.
    PaymentGateway`) and docs/adapters.md's contract table; the conformance suite checks
    them."""

    def __init__(self, url: str) -> None:
        self.url = url

    @classmethod
    def from_url(cls, url: str) -> {cls}:
        """The factory the ``{scheme}`` entry point names: the whole URL, as
        `Platform.from_urls` is given it."""
        return cls(url)

{methods}

    def close(self) -> None:
        """Optional: release connections (`Platform.close` calls it)."""
'''

_GATEWAY_TESTS = '''\
"""The conformance suite, run by commerce-core's pytest plugin."""

from commerce_core.testing.conformance import PaymentGatewayConformance


class Test{cls}(PaymentGatewayConformance):
    payment_gateway_url = "{scheme}://test"
    # tokens your provider's test mode approves and declines
    gateway_tokens = {{"approve": "tok_approve", "decline": "tok_decline"}}
'''
_STORE_TESTS = '''\
"""The conformance suites, run by commerce-core's pytest plugin ({{tmp_path}}: a fresh
file for every test)."""

from commerce_core.testing.conformance import {suite}, OutboxConformance

URL = "{scheme}:///{{tmp_path}}/{file}"


class Test{cls}({suite}):
    {setting} = URL


class Test{cls}Outbox(OutboxConformance):
    {setting} = URL
'''
#: each store's suite, the plugin's setting naming its URL, and its file
_STORE_SUITES = {
    "inventory-store": ("InventoryStoreConformance", "inventory_store_url", "inventory.db"),
    "order-store": ("OrderStoreConformance", "order_store_url", "orders.db"),
}


def _core_requirement() -> str:
    try:
        major, minor = version("commerce-core").split(".")[:2]
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "commerce-core"
    return f"commerce-core>={major}.{minor},<{major}.{int(minor) + 1}"


def render(names: Names) -> dict[str, str]:
    """The skeleton's files, by path relative to its folder."""
    kind = names.kind
    title = {"payment-gateway": "A payment gateway", "inventory-store": "An inventory store",
             "order-store": "An order store"}[kind]
    header = (f'"""{names.distribution}: {title.lower()} for commerce-core, registered '
              f'under\n``{names.scheme}://``.\n\nGenerated by ``python -m '
              f'commerce_core.testing.scaffold {kind} {names.distribution}``:\n'
              'every method raises NotImplementedError until written; ``pytest`` lists '
              'those left.\n"""\n\nfrom __future__ import annotations\n\n')
    if kind == "payment-gateway":
        methods = "\n\n".join(_stub(name, fn) for name, fn
                              in _methods(payment_ports.PaymentGateway))
        body = _GATEWAY.format(cls=names.cls, scheme=names.scheme, methods=methods)
        source = f"{header}{_IMPORTS[kind]}\n{body}"
    else:
        repositories = _REPOSITORIES[kind]
        classes = "\n\n".join(_repository(attr, port, mixin)
                              for attr, port, mixin in repositories)
        assign = "\n".join(
            f"        self.{attr} = _{attr.capitalize()}(cursor)" for attr, _, _ in repositories)
        store = _STORE.format(cls=names.cls, scheme=names.scheme, title=title,
                              repositories=assign)
        source = (f"{header}{_IMPORTS[kind]}\n"
                  "#: your tables (the outbox's come from commerce_core.kit.outbox_schema)\n"
                  "SCHEMA: list[str] = []\n\n\n"
                  f"{classes}\n{store}")
    pyproject = f'''\
[build-system]
requires = ["hatchling>=1.25,<2"]
build-backend = "hatchling.build"

[project]
name = "{names.distribution}"
version = "0.1.0"
description = "{title} for commerce-core ({names.scheme}://)"
readme = "README.md"
requires-python = ">=3.11"
dependencies = ["{_core_requirement()}"]

[project.optional-dependencies]
test = ["pytest>=8.3,<10"]

# Platform.from_urls(...="{names.scheme}://...") finds the adapter here
[project.entry-points."{names.group}"]
{names.scheme} = "{names.module}:{names.cls}.from_url"

[tool.hatch.build.targets.wheel]
packages = ["src/{names.module}"]

[tool.pytest.ini_options]
testpaths = ["tests"]
'''
    readme = (f"# {names.distribution}\n\n{title} for commerce-core, registered under "
              f"`{names.scheme}://`.\n\n```sh\npip install -e '.[test]'\npytest   # the "
              "conformance suites; the summary lists the methods still to write\n```\n")
    if kind == "payment-gateway":
        tests = _GATEWAY_TESTS.format(cls=names.cls, scheme=names.scheme)
    else:
        suite, setting, file = _STORE_SUITES[kind]
        tests = _STORE_TESTS.format(cls=names.cls, scheme=names.scheme, suite=suite,
                                    setting=setting, file=file)
    return {"pyproject.toml": pyproject, "README.md": readme,
            f"src/{names.module}/__init__.py": source,
            "tests/test_conformance.py": tests}


def scaffold(kind: str, name: str, *, into: Path, scheme: str | None = None) -> Path:
    """Write the skeleton into ``into``/NAME (which must not exist); its folder."""
    names = Names(kind, name, scheme)
    root = into / names.distribution
    if root.exists():
        raise FileExistsError(f"{root} exists: pick another name or folder")
    for relative, text in render(names).items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m commerce_core.testing.scaffold",
        description="Write the skeleton of an adapter: an installable package whose test "
                    "file runs the conformance suites.")
    parser.add_argument("kind", choices=KINDS)
    parser.add_argument("name", help="the distribution's name, e.g. acme-pay")
    parser.add_argument("--scheme", help="the URL scheme (default: the name without "
                                         "punctuation)")
    parser.add_argument("--into", type=Path, default=Path(), help="the parent folder")
    args = parser.parse_args(argv)
    try:
        root = scaffold(args.kind, args.name, into=args.into, scheme=args.scheme)
    except (ValueError, OSError) as exc:  # FileExistsError, a file as --into, a long name
        print(f"scaffold: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {root}: pip install -e '{root}[test]' && pytest {root}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

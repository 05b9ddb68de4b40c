"""commerce-core's pytest plugin, for adapter authors (registered under ``pytest11``, so it
is active wherever commerce-core is installed; it does nothing until a test asks for one of
its fixtures).

- The conformance suites' assertions are rewritten, so a failing check shows its values,
  although `commerce_core.testing.conformance` is an installed module.
- Fixtures build the adapter under test from a URL, through its entry point, exactly as
  `Platform.from_urls` will: ``order_store``, ``inventory_store``, ``outbox_store`` (each
  store's outbox), ``webhook_store``, ``payment_gateway`` and ``gateway_tokens``. Say the
  URLs on the test class (or module), or in the pytest ini options::

      from commerce_core.testing.conformance import InventoryStoreConformance, OutboxConformance

      class TestMyInventoryStore(InventoryStoreConformance):
          inventory_store_url = "mydb:///{tmp_path}/inventory.db"

      class TestMyOutbox(OutboxConformance):
          inventory_store_url = "mydb:///{tmp_path}/inventory.db"

  ``{tmp_path}`` becomes the test's own temporary folder, so every test gets a fresh,
  empty store. A store on a database server defines the fixture itself (a fixture of the
  test module or of a ``conftest.py`` replaces the plugin's).
- After the run, the methods still to write: every method in the package of an adapter
  the fixtures built whose body only raises ``NotImplementedError`` (a scaffold's, until
  written: `commerce_core.testing.scaffold`), each with how many tests (of those using
  the fixtures) failed on it. Nothing is listed for a run that built no adapter.
"""

from __future__ import annotations

import ast
import inspect
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# before the suites are imported by any test module
pytest.register_assert_rewrite("commerce_core.testing.conformance")

from commerce_core._registry import (  # noqa: E402
    INVENTORY_STORES,
    ORDER_STORES,
    PAYMENT_GATEWAYS,
    load_adapter,
)
from commerce_core.errors import AdapterBroken, AdapterNotInstalled  # noqa: E402

__all__ = ["URL_SETTINGS", "unwritten_methods"]

#: the settings the fixtures read: a class or module attribute of this name, or the ini
#: option ``commerce_core_`` + name
URL_SETTINGS = ("order_store_url", "inventory_store_url", "payment_gateway_url")

_TODO = pytest.StashKey[dict[str, list[str]]]()
_BUILT = pytest.StashKey[set[str]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    for name in URL_SETTINGS:
        parser.addini(f"commerce_core_{name}",
                      f"the URL the plugin's fixtures build the adapter from ({name}; "
                      "{tmp_path}: the test's temporary folder)", default="")


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_TODO] = {}
    config.stash[_BUILT] = set()


def _setting(node: Any, config: pytest.Config, name: str) -> Any:
    for holder in (getattr(node, "cls", None), getattr(node, "module", None)):
        value = getattr(holder, name, None) if holder is not None else None
        if value is not None:
            return value
    return config.getini(f"commerce_core_{name}") if name in URL_SETTINGS else None


def _build(request: pytest.FixtureRequest, name: str, group: str, tmp_path: Path) -> Any:
    url = _setting(request, request.config, name)
    if not url:
        pytest.fail(f"{request.fixturename}: set {name} = 'scheme://…' on the test class or "
                    f"module, or commerce_core_{name} in the pytest ini options (or define "
                    f"a fixture {request.fixturename!r} of your own)", pytrace=False)
    try:
        adapter = load_adapter(group, str(url).replace("{tmp_path}", tmp_path.as_posix()))
    except (AdapterBroken, AdapterNotInstalled) as exc:
        pytest.fail(f"{request.fixturename}: {exc}", pytrace=False)
    package = type(adapter).__module__.partition(".")[0]
    if package != "commerce_core":  # the library's own test doubles have nothing to write
        request.config.stash[_BUILT].add(package)
    return adapter


def _closing(adapter: Any) -> Iterator[Any]:
    try:
        yield adapter
    finally:
        close = getattr(adapter, "close", None)
        if callable(close):
            close()


@pytest.fixture
def order_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """A fresh order store built from ``order_store_url``."""
    yield from _closing(_build(request, "order_store_url", ORDER_STORES, tmp_path))


@pytest.fixture
def inventory_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """A fresh inventory store built from ``inventory_store_url``."""
    yield from _closing(_build(request, "inventory_store_url", INVENTORY_STORES, tmp_path))


@pytest.fixture
def outbox_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """Each configured store in turn (``orders``, ``inventory``): the outbox suite runs
    once per store whose URL is set."""
    kind = getattr(request, "param", None)
    if kind is None:
        pytest.fail("outbox_store: set order_store_url and/or inventory_store_url (or "
                    "define a fixture 'outbox_store' of your own)", pytrace=False)
    name, group = (("order_store_url", ORDER_STORES) if kind == "orders"
                   else ("inventory_store_url", INVENTORY_STORES))
    yield from _closing(_build(request, name, group, tmp_path))


@pytest.fixture
def webhook_store(order_store: Any) -> Any:
    """The order store's webhook store (its optional ``webhook_store()``)."""
    make = getattr(order_store, "webhook_store", None)
    if not callable(make):
        pytest.fail("webhook_store: the order store has no webhook_store()", pytrace=False)
    return make()


@pytest.fixture
def payment_gateway(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """The gateway built from ``payment_gateway_url``."""
    yield from _closing(_build(request, "payment_gateway_url", PAYMENT_GATEWAYS, tmp_path))


@pytest.fixture
def gateway_tokens(request: pytest.FixtureRequest) -> dict[str, str]:
    """``gateway_tokens`` of the test class or module: ``{"approve": a token the provider
    approves, "decline": one it declines}``."""
    tokens = _setting(request, request.config, "gateway_tokens")
    if not isinstance(tokens, dict) or not {"approve", "decline"} <= tokens.keys():
        pytest.fail("gateway_tokens: set gateway_tokens = {'approve': …, 'decline': …} on "
                    "the test class or module", pytrace=False)
    return tokens


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "outbox_store" not in metafunc.fixturenames:
        return
    kinds = [kind for kind, name in (("orders", "order_store_url"),
                                     ("inventory", "inventory_store_url"))
             if _setting(metafunc, metafunc.config, name)]
    if kinds:
        metafunc.parametrize("outbox_store", kinds, indirect=True)


_FIXTURES = frozenset({"order_store", "inventory_store", "outbox_store", "webhook_store",
                       "payment_gateway"})


def _in_packages(module: str, packages: set[str]) -> bool:
    return module.partition(".")[0] in packages


def _unwritten(excinfo: pytest.ExceptionInfo[BaseException], built: set[str]) -> str | None:
    """The adapter's method that raised the ``NotImplementedError``: the innermost frame in
    the package the plugin built an adapter from, by its qualified name (its message is not a
    name: "TODO", or a provider's "not supported"). None if no adapter's code raised it."""
    for entry in reversed(excinfo.traceback):
        frame = entry.frame
        if _in_packages(str(frame.f_globals.get("__name__", "")), built):
            code = frame.code.raw
            return str(getattr(code, "co_qualname", code.co_name))
    return None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item,
                              call: pytest.CallInfo[None]) -> Iterator[None]:
    report = yield
    uses = getattr(item, "fixturenames", ())
    if (call.excinfo is not None and call.excinfo.errisinstance(NotImplementedError)
            and _FIXTURES.intersection(uses)):
        method = _unwritten(call.excinfo, item.config.stash[_BUILT])
        if method is not None:
            item.config.stash[_TODO].setdefault(method, []).append(item.nodeid)
    return report


def _only_raises_not_implemented(function: Any) -> bool:
    """Whether a function's body is (a docstring and) ``raise NotImplementedError``."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
    except (OSError, TypeError, SyntaxError):
        return False
    body = tree.body[0].body if tree.body and isinstance(
        tree.body[0], (ast.FunctionDef, ast.AsyncFunctionDef)) else []
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]
    if len(body) != 1 or not isinstance(body[0], ast.Raise) or body[0].exc is None:
        return False
    raised = body[0].exc.func if isinstance(body[0].exc, ast.Call) else body[0].exc
    return isinstance(raised, ast.Name) and raised.id == "NotImplementedError"


def unwritten_methods(module_name: str) -> list[str]:
    """The methods of the classes defined in a module whose body only raises
    ``NotImplementedError`` (a scaffold's, until written), in source order."""
    module = sys.modules.get(module_name)
    found: list[tuple[int, str]] = []
    for cls in vars(module).values() if module is not None else ():
        if not inspect.isclass(cls) or cls.__module__ != module_name:
            continue
        for function in vars(cls).values():
            if inspect.isfunction(function) and _only_raises_not_implemented(function):
                found.append((function.__code__.co_firstlineno, function.__qualname__))
    return [name for _, name in sorted(found)]


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    reached = config.stash.get(_TODO, {})
    built = config.stash.get(_BUILT, set())
    modules = sorted(name for name in list(sys.modules) if _in_packages(name, built))
    todo = {name: len(reached.get(name, ())) for module in modules
            for name in unwritten_methods(module)}
    for name, reaching in reached.items():
        todo.setdefault(name, len(reaching))
    if not todo:
        return
    count = f"{len(todo)} method{'s' if len(todo) > 1 else ''}"
    terminalreporter.section(f"commerce-core: {count} still to write")
    for method, tests in todo.items():
        note = f"  ({tests} test{'s' if tests > 1 else ''} reached it)" if tests else ""
        terminalreporter.write_line(f"{method}{note}")

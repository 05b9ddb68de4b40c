"""What an adapter author starts from: the skeletons `commerce_core.testing.scaffold` writes
install as packages, their test files run the conformance suites through the pytest plugin
(`commerce_core_pytest`), and the run names every method still to write. Each skeleton is
really built (hatchling, no download) and installed into a folder of its own, and pytest
runs in a process of its own, as on an author's machine."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
from pathlib import Path

import pytest

from commerce_core.payments.ports import PaymentGateway
from commerce_core.testing import scaffold
from commerce_core.testing.conformance import OutboxConformance

SUITES = Path(__file__).parent


def _run(args: list[str], cwd: Path, site: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("PYTEST_ADDOPTS", None)
    if site is not None:
        env["PYTHONPATH"] = str(site)
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=240, check=False)


def _pytest(cwd: Path, site: Path | None = None) -> subprocess.CompletedProcess[str]:
    return _run(["-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly"],
                cwd, site)


def _expected_stubs(kind: str) -> list[str]:
    """Every method of the kind's ports the skeleton must leave to write, qualified as the
    skeleton names its classes."""
    if kind == "payment-gateway":
        return [f"AcmeGateway.{name}" for name, fn in vars(PaymentGateway).items()
                if inspect.isfunction(fn) and not name.startswith("_")]
    names = []
    for attribute, port, mixin in scaffold._REPOSITORIES[kind]:
        supplied = scaffold._SUPPLIED.get(mixin or "", set())
        names += [f"_{attribute.capitalize()}.{name}" for name, fn in vars(port).items()
                  if inspect.isfunction(fn) and not name.startswith("_")
                  and name not in supplied]
    return names


def _summary(output: str) -> list[str]:
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if "methods still to write" in line)
    listed = []
    for line in lines[start + 1:]:
        if line.startswith("="):
            break
        listed.append(line.split("  (")[0].strip())
    return listed


@pytest.mark.parametrize("kind", scaffold.KINDS)
def test_a_skeleton_installs_and_its_suites_name_every_method_still_to_write(
        kind: str, tmp_path: Path) -> None:
    root = scaffold.scaffold(kind, "acme", into=tmp_path / "src")
    site = tmp_path / "site"
    built = _run(["-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                  "--no-index", "--target", str(site), str(root)], tmp_path)
    assert built.returncode == 0, built.stderr
    # installed: the entry point names the scheme, and nothing is imported from the source
    assert list(site.glob("acme-0.1.0.dist-info/entry_points.txt"))
    (root / "src").rename(root / "not-imported")

    ran = _pytest(root, site)
    assert ran.returncode == 1, ran.stdout[-3000:] + ran.stderr[-3000:]
    expected = _expected_stubs(kind)
    assert f"commerce-core: {len(expected)} methods still to write" in ran.stdout
    assert _summary(ran.stdout) == expected
    if kind != "payment-gateway":
        # the outbox comes written (commerce_core.kit.DbApiOutbox): its whole suite passes
        outbox_tests = [n for n in vars(OutboxConformance) if n.startswith("test_")]
        assert f"{len(outbox_tests)} passed" in ran.stdout.splitlines()[-1], ran.stdout[-500:]
        assert "Outbox::" not in "".join(line for line in ran.stdout.splitlines()
                                         if line.startswith("FAILED"))


def test_the_plugin_builds_every_adapter_from_its_url_and_runs_the_suites(
        tmp_path: Path) -> None:
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "test_mine.py").write_text('''
from commerce_core.testing.conformance import (
    InventoryStoreConformance, OrderStoreConformance, OutboxConformance,
    PaymentGatewayConformance, WebhookStoreConformance,
)

class TestInventory(InventoryStoreConformance):
    inventory_store_url = "memory://"

class TestOrders(OrderStoreConformance):
    order_store_url = "memory://"

class TestOutboxes(OutboxConformance):
    order_store_url = "memory://"
    inventory_store_url = "memory://"

class TestWebhooks(WebhookStoreConformance):
    order_store_url = "memory://"

class TestGateway(PaymentGatewayConformance):
    payment_gateway_url = "sandbox://"
    gateway_tokens = {"approve": "tok_visa", "decline": "tok_declined"}

inventory_store_url = "memory://"   # for the module's own tests
payment_gateway_url = "sandbox://"

def test_the_fixtures_build_through_the_entry_points(inventory_store, payment_gateway):
    from commerce_core.testing import InMemoryInventoryStore, SandboxPaymentGateway
    assert isinstance(inventory_store, InMemoryInventoryStore)
    assert isinstance(payment_gateway, SandboxPaymentGateway)
''')
    ran = _run(["-m", "pytest", "-p", "no:cacheprovider", "-p", "no:randomly", "-rA", "-q"],
               tmp_path)
    assert ran.returncode == 0, ran.stdout[-3000:]
    # the outbox suite ran once per store
    outbox_tests = [n for n in vars(OutboxConformance) if n.startswith("test_")]
    for kind in ("orders", "inventory"):
        assert sum(f"TestOutboxes::{name}[{kind}]" in ran.stdout
                   for name in outbox_tests) == len(outbox_tests)
    assert "still to write" not in ran.stdout


def test_a_missing_url_says_what_to_set(tmp_path: Path) -> None:
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "test_mine.py").write_text('''
from commerce_core.testing.conformance import InventoryStoreConformance

class TestInventory(InventoryStoreConformance):
    pass
''')
    ran = _pytest(tmp_path)
    assert ran.returncode == 1
    assert "set inventory_store_url = 'scheme://…' on the test class or module" in ran.stdout


def test_a_failing_check_of_an_installed_suite_shows_its_values(tmp_path: Path) -> None:
    """pytest rewrites the suites' assertions (the plugin registers them), so a broken
    store's author sees what came back, not a bare AssertionError."""
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "test_mine.py").write_text('''
import attrs, pytest
from commerce_core.testing import InMemoryInventoryStore
from commerce_core.testing.conformance import InventoryStoreConformance

class Renaming(InMemoryInventoryStore):
    def unit_of_work(self):
        uow = super().unit_of_work()
        get = uow.products.get
        uow.products.get = lambda sku: (lambda p: p and attrs.evolve(p, name="Mugg"))(get(sku))
        return uow

@pytest.fixture
def inventory_store():
    return Renaming()

class TestBroken(InventoryStoreConformance):
    pass
''')
    ran = _run(["-m", "pytest", "-p", "no:cacheprovider", "-p", "no:randomly", "-q",
                "test_mine.py::TestBroken::test_a_product_round_trips"], tmp_path)
    assert ran.returncode == 1
    assert "Mugg" in ran.stdout and "Differing attributes" in ran.stdout, ran.stdout[-3000:]


@pytest.mark.parametrize(("name", "scheme", "error"), [
    ("", None, "name ''"), ("1acme", None, "name '1acme'"), ("acme pay", None, "name"),
    ("a" * 65, None, "up to 64"), ("class", None, "keyword"),
    # a module that exists already would be shadowed by the skeleton's
    ("json", None, "shadow"), ("commerce-core", None, "shadow"), ("pytest", None, "shadow"),
    ("acme", "Acme!", "scheme 'Acme!'"), ("acme", "", "scheme ''"),
    # a scheme another package serves: which one loads would depend on sys.path
    ("acme", "memory", "scheme 'memory' is taken"), ("acme", "sqlite", "is taken"),
])
def test_the_scaffold_refuses_names_it_cannot_use(
        name: str, scheme: str | None, error: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=error):
        scaffold.scaffold("order-store", name, into=tmp_path, scheme=scheme)
    assert list(tmp_path.iterdir()) == []


def test_the_scaffold_says_why_it_cannot_write_where_it_is_told(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    assert scaffold.main(["order-store", "acme", "--into", str(tmp_path / "a-file")]) == 2
    assert "scaffold:" in capsys.readouterr().err


def test_a_not_implemented_error_outside_an_adapter_is_not_a_method_to_write(
        tmp_path: Path) -> None:
    """A project with commerce-core installed gets no summary of its own
    NotImplementedErrors (the plugin is active there too)."""
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "test_mine.py").write_text('''
def test_unsupported():
    raise NotImplementedError("refunds in JPY are not supported by this provider")
''')
    ran = _pytest(tmp_path)
    assert ran.returncode == 1
    assert "still to write" not in ran.stdout


def test_the_scaffold_never_writes_over_a_folder(tmp_path: Path) -> None:
    (tmp_path / "acme").mkdir()
    (tmp_path / "acme" / "keep.txt").write_text("mine")
    assert scaffold.main(["order-store", "acme", "--into", str(tmp_path)]) == 2
    assert [p.name for p in (tmp_path / "acme").iterdir()] == ["keep.txt"]
    assert scaffold.main(["order-store", "acme", "--into", str(tmp_path / "x")]) == 0
    assert (tmp_path / "x" / "acme" / "pyproject.toml").exists()

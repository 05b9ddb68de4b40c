"""The core and every adapter distribution are versioned in lockstep and pin each other."""

from __future__ import annotations

import tomllib
from pathlib import Path

import commerce_core

ROOT = Path(__file__).resolve().parents[2]


def _project(path: Path) -> dict[str, object]:
    return tomllib.loads(path.read_text())["project"]  # type: ignore[no-any-return]


def test_every_distribution_has_the_core_version_and_pins_it_exactly() -> None:
    core = _project(ROOT / "pyproject.toml")
    version = str(core["version"])
    assert commerce_core.__version__ == version
    extras = core["optional-dependencies"]
    assert isinstance(extras, dict)
    adapters = sorted((ROOT / "adapters").glob("*/pyproject.toml"))
    assert adapters, "no adapter distributions found"
    for path in adapters:
        adapter = _project(path)
        name = str(adapter["name"])
        assert adapter["version"] == version, f"{name} is not at {version}"
        assert f"commerce-core=={version}" in str(adapter["dependencies"]), name
        family = name.removeprefix("commerce-core-")
        assert extras[family] == [f"{name}=={version}"], f"extra [{family}] does not pin {name}"
        assert (path.parent / "src" / name.replace("-", "_") / "py.typed").exists()


def test_the_reference_server_is_in_lockstep_too() -> None:
    version = str(_project(ROOT / "pyproject.toml")["version"])
    server = _project(ROOT / "examples" / "reference_server" / "pyproject.toml")
    assert server["version"] == version
    pins = [d for d in server["dependencies"] if str(d).startswith("commerce-core")]  # type: ignore[attr-defined]
    assert pins and all(str(pin).endswith(f"=={version}") for pin in pins)
    assert server["scripts"] == {"commerce-server": "commerce_server.cli:main"}

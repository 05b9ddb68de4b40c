"""--demo prints the keys it made, never the ones an operator supplied."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.conftest import Server, sqlite_env

SUPPLIED = "operator-admin-key-not-to-be-printed=admin"


def test_demo_prints_no_key_the_operator_supplied(tmp_path: Path) -> None:
    demo = Server(tmp_path, {**sqlite_env(tmp_path), "COMMERCE_API_KEYS": SUPPLIED}, "--demo")
    try:
        printed = demo.output()
    finally:
        demo.stop()
    assert "operator-admin-key" not in printed
    assert "COMMERCE_API_KEYS" in printed


def test_demo_prints_the_keys_it_made(tmp_path: Path) -> None:
    env = {**sqlite_env(tmp_path), "COMMERCE_API_KEYS": ""}
    demo = Server(tmp_path, env, "--demo")
    try:
        printed = demo.output()
    finally:
        demo.stop()
    assert printed.count("Authorization: Bearer admin_") == 1
    assert "Authorization: Bearer alice_" in printed

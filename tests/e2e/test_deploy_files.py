"""The operations files shipped beside the reference server: the alerting rules pass
``promtool check rules`` and their own ``promtool test rules``; the Prometheus configuration
passes ``promtool check config``; every metric the rules and the Grafana dashboard name is
one the server exposes.

``.ci/run`` installs Debian's ``prometheus`` (for ``promtool``) when it is missing; in CI a
missing ``promtool`` fails these tests, elsewhere it skips them."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import app_from_env, client_of

DEPLOY = Path(__file__).resolve().parents[2] / "examples" / "reference_server" / "deploy"
PROMETHEUS = DEPLOY / "prometheus"
DASHBOARD = DEPLOY / "grafana" / "commerce-core.json"


def _promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        message = "promtool is not installed: apt-get install prometheus"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return found


@pytest.mark.parametrize("command", [["check", "rules", "alerts.yml"],
                                     ["check", "config", "prometheus.yml"],
                                     ["test", "rules", "alerts_test.yml"]])
def test_promtool_accepts_the_rules_and_their_tests(command: list[str]) -> None:
    done = subprocess.run([_promtool(), *command], cwd=PROMETHEUS, capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def _named(text: str) -> set[str]:
    """The families an expression names (``commerce_x_total`` -> ``commerce_x``)."""
    names = set(re.findall(r"\b(commerce_[a-z_]+)", text))
    return {re.sub(r"_(total|bucket|count|sum)$", "", name) for name in names}


def test_every_metric_the_rules_and_the_dashboard_name_is_exposed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = app_from_env(tmp_path, monkeypatch)

    async def scrape() -> str:
        async with client_of(app) as http:
            await http.get("/v1/products")
            return (await http.get("/metrics")).text

    exposed = {family.name for family in text_string_to_metric_families(asyncio.run(scrape()))}
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    assert len(dashboard["panels"]) >= 10
    named = _named("\n".join(exprs)) | _named((PROMETHEUS / "alerts.yml").read_text())
    assert named, "no metric named"
    assert named <= exposed, sorted(named - exposed)
    # the objectives are on the dashboard, as thresholds
    thresholds = {panel["title"]: [step["value"] for step in
                                   panel["fieldConfig"]["defaults"]["thresholds"]["steps"]]
                  for panel in dashboard["panels"]}
    assert thresholds["Checkout p99 (objective 100 ms)"] == [None, 0.1]
    assert thresholds["Provider call p99 by operation (objective 500 ms)"] == [None, 0.5]

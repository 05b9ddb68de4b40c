"""`make chaos` at a modest size: the server SIGKILLed and restarted while the provider
fails; afterwards every figure that must be 0 is 0."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_fault_injection_run_leaves_nothing_wrong(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "chaos.py"), "--seed", "3", "--orders", "80",
         "--kill-every", "0.5", "--folder", str(tmp_path)],
        capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    figures = json.loads(done.stdout.splitlines()[-1])
    assert figures["orders"] == 80
    assert figures["confirmed"] > 0 and figures["failed"] > 0
    for key in ("oversold_units", "unresolved_orders", "authorizations_without_order",
                "confirmed_without_authorization", "double_charges", "amount_mismatches",
                "ledger_mismatches"):
        assert figures[key] == 0, key
    summary = done.stderr.strip().splitlines()[-1]
    kills = int(summary.split(" SIGKILLs")[0].rsplit(" ", 1)[-1])
    assert kills >= 2, summary  # the server really died mid-run

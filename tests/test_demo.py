"""`make demo` keeps working: the walk-through runs, tells its story and ends consistent."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

DEMO = Path(__file__).resolve().parent.parent / "examples" / "demo.py"


def test_the_demo_runs_twice_and_tells_the_same_story(tmp_path: Path) -> None:
    runs = [subprocess.run([sys.executable, str(DEMO), str(tmp_path / "demo")],
                           capture_output=True, text=True, timeout=120, check=False)
            for _ in range(2)]
    for run in runs:
        assert run.returncode == 0, run.stderr
        out = run.stdout
        assert "insufficient-stock" in out and "payment-declined" in out
        assert "payment-unavailable" in out and "same order, charged once: True" in out
        assert "shipped, payment captured" in out and "cancelled, stock released" in out
        assert "partially_refunded" in out
        assert "Every invariant holds" in out
    # it starts from empty databases each time: the final stock is the same both times
    stock = [run.stdout[run.stdout.index("Final stock:"):] for run in runs]
    assert stock[0] == stock[1]
    assert "MUG-01   BER               4         0          4" in stock[0]

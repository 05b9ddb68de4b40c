"""The tutorial's Python blocks run, in order, in one namespace: the docs cannot rot."""

from __future__ import annotations

import re
from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_the_tutorial_runs_as_written() -> None:
    text = (DOCS / "tutorial.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)
    assert len(blocks) >= 8
    namespace: dict[str, object] = {}
    for number, block in enumerate(blocks, 1):
        code = compile(block, f"tutorial.md block {number}", "exec")
        exec(code, namespace)  # noqa: S102 - our own documentation

"""The platform as a FINOS CALM 1.1 architecture (architecture as code).

- `describe` writes what a deployment is configured with as a CALM 1.1 document: the
  client's nine nodes under their unique ids, the nodes for what is configured besides, the
  interfaces read from the URLs (never a user, password, key or query), the relationships,
  and the checkout as a flow.
- `check` compares such a document with an intended architecture: a `CheckReport` of
  errors (the structure is not realised), warnings (objectives not met) and notes.
- `realise` reads the settings an architecture names (the stores' databases, the
  gateway's interface and rate limit, ...), with credentials from the host.
- `meta_schemas` are the CALM 1.1 meta schemas (JSON Schema 2020-12), for a host that
  validates documents with ``jsonschema``.

The core only reads and writes plain data (ready for ``json.dumps``/``json.loads``).
"""

from __future__ import annotations

import json
from importlib.resources import files
from typing import Any

from commerce_core.calm._check import CheckReport, Finding, check, rate_per_second
from commerce_core.calm._describe import (
    CALM_SCHEMA,
    Deployment,
    describe,
    interface_of,
    pool_size_of,
)
from commerce_core.calm._realise import Credentials, Listen, Realisation, realise

__all__ = ["CALM_SCHEMA", "CheckReport", "Credentials", "Deployment", "Finding", "Listen",
           "Realisation", "check", "describe", "interface_of", "meta_schemas",
           "pool_size_of", "rate_per_second", "realise"]


def meta_schemas() -> list[dict[str, Any]]:
    """The CALM 1.1 meta schemas as published by FINOS (Apache License 2.0), each with its
    ``$id``: ``calm.json`` (`CALM_SCHEMA`) and the schemas its ``$ref``s name."""
    folder = files("commerce_core.calm").joinpath("meta", "1.1")
    return [json.loads(entry.read_text(encoding="utf-8"))
            for entry in sorted(folder.iterdir(), key=lambda e: e.name)
            if entry.name.endswith(".json")]

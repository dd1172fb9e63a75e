"""The record of which scenario and seed wrote a data home's logs (the key to its truth).

Policy values themselves come from :func:`offline_rl.shop.policy_value`, which finds the
domain's simulator in the registry of domains.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def write_simulation_manifest(path: Path, record: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2, default=str))


def read_simulation_manifest(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.is_file() else None

"""Paths to the contracts copied into the repository (`contracts/`), which the tests read as-is."""

from __future__ import annotations

import json
from typing import Any

from devstack import REPO_ROOT

CONTRACTS = REPO_ROOT / "contracts"


def load(relative: str) -> Any:
    return json.loads((CONTRACTS / relative).read_text(encoding="utf-8"))


def text(relative: str) -> str:
    return (CONTRACTS / relative).read_text(encoding="utf-8")

"""Paths to the contracts copied into the repository (`contracts/`), which the tests read as-is."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
CONTRACTS = REPO / "contracts"


def load(relative: str) -> Any:
    return json.loads((CONTRACTS / relative).read_text(encoding="utf-8"))


def text(relative: str) -> str:
    return (CONTRACTS / relative).read_text(encoding="utf-8")

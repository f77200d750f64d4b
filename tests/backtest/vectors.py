"""The backtest contract vectors, decoded as Firestore would hand them to the worker.

JSON numbers keep their kind (`10000.0` a double, `10000` an integer), and `{"$double": ...}`
stands for the NaN and infinities JSON cannot carry (contracts/backtest/README.md).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from tests.contracts import CONTRACTS

BACKTEST = CONTRACTS / "backtest"
VECTOR_DIR = BACKTEST / "test_vectors"
HISTORY_MAX_BYTES = 4194304  # BACKTEST §12 default


def _special_double(obj: dict[str, Any]) -> Any:
    if obj.keys() == {"$double"}:
        return float(obj["$double"])  # "NaN", "Infinity", "-Infinity"
    return obj


def load_vector(path: Path) -> dict[str, Any]:
    vector: dict[str, Any] = json.loads(
        path.read_text(encoding="utf-8"), object_hook=_special_double
    )
    return vector


def vector_paths(prefix: str) -> list[Path]:
    return sorted(VECTOR_DIR.glob(f"{prefix}*.json"))


def result_validator() -> Draft202012Validator:
    registry: Registry[Any] = Registry()
    for schema_path in BACKTEST.glob("*.schema.json"):
        schema = json.loads(schema_path.read_text(encoding="utf-8"))
        registry = registry.with_resource(schema["$id"], Resource.from_contents(schema))
    schema = json.loads((BACKTEST / "backtest_result.schema.json").read_text(encoding="utf-8"))
    return Draft202012Validator(schema, registry=registry)


def differences(expected: Any, actual: Any, path: str = "$") -> list[str]:
    """Where `actual` departs from `expected` under BACKTEST §9.7's comparison.

    Doubles agree within `1e-9 * max(1, |a|, |b|)` and must be doubles; everything else (kinds,
    integers, strings, booleans, nulls, key sets, list lengths) must be identical.
    """
    if isinstance(expected, bool) or expected is None or isinstance(expected, str):
        same = type(actual) is type(expected) and actual == expected
        return [] if same else [f"{path}: expected {expected!r}, got {actual!r}"]
    if isinstance(expected, int):
        same = type(actual) is int and actual == expected
        return [] if same else [f"{path}: expected integer {expected!r}, got {actual!r}"]
    if isinstance(expected, float):
        if type(actual) is not float:
            return [f"{path}: expected a double, got {actual!r}"]
        tolerance = 1e-9 * max(1.0, abs(expected), abs(actual))
        close = math.isfinite(actual) and abs(actual - expected) <= tolerance
        return [] if close else [f"{path}: expected {expected!r}, got {actual!r}"]
    if isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) != len(expected):
            return [f"{path}: expected a list of {len(expected)}, got {actual!r:.80}"]
        found: list[str] = []
        for i, (e, a) in enumerate(zip(expected, actual, strict=True)):
            found += differences(e, a, f"{path}[{i}]")
        return found
    if isinstance(expected, dict):
        if not isinstance(actual, dict) or actual.keys() != expected.keys():
            got = sorted(actual) if isinstance(actual, dict) else actual
            return [f"{path}: expected keys {sorted(expected)}, got {got!r:.200}"]
        found = []
        for key in expected:
            found += differences(expected[key], actual[key], f"{path}.{key}")
        return found
    raise TypeError(f"{path}: unexpected JSON value {type(expected).__name__}")

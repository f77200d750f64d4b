"""Engine 1.0.0 against the contract vectors bt01..bt08 (BACKTEST §9, contracts/backtest)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from states.backtest.history import history_object_name, select_points
from states.backtest.validation import ValidJob, synthetic_dates, validate_job
from tests.backtest.vectors import (
    HISTORY_MAX_BYTES,
    differences,
    load_vector,
    result_validator,
    vector_paths,
)
from wheelsim import ENGINE_VERSION, result_sha256, simulate

ENGINE_VECTORS = vector_paths("bt")


def run_vector(vector: dict[str, Any]) -> dict[str, Any]:
    """What the worker does between the claim and the result write, minus the I/O."""
    valid = validate_job(vector["jobId"], vector["job"])
    assert isinstance(valid, ValidJob), valid
    if valid.inline_prices is not None:
        prices = list(valid.inline_prices)
        dates = synthetic_dates(valid.start, len(prices))
    else:
        history = vector["history"]
        assert history["objectName"] == history_object_name("", valid.config.symbol)
        prices, dates = select_points(
            history["content"].encode("utf-8"), valid.start, valid.end, HISTORY_MAX_BYTES
        )
    return simulate(valid.config, prices, dates)


def engine_vector(path: Path) -> dict[str, Any]:
    vector = load_vector(path)
    if vector["expected"]["result"] is None:
        reason = vector["expected"]["job"]["errorCode"]
        pytest.skip(f"{path.stem}: the job fails with {reason} before the engine runs")
    return vector


def test_every_engine_vector_is_collected() -> None:
    assert [p.stem[:4] for p in ENGINE_VECTORS] == [f"bt0{i}" for i in range(1, 10)]


@pytest.mark.parametrize("path", ENGINE_VECTORS, ids=lambda p: p.stem)
def test_result_matches_the_vector(path: Path) -> None:
    vector = engine_vector(path)
    result = run_vector(vector)
    assert differences(vector["expected"]["result"]["backtestResult"], result) == []


@pytest.mark.parametrize("path", ENGINE_VECTORS, ids=lambda p: p.stem)
def test_result_hash_matches_the_vector(path: Path) -> None:
    vector = engine_vector(path)
    expected = vector["expected"]["result"]
    assert expected["engineVersion"] == ENGINE_VERSION
    assert result_sha256(run_vector(vector)) == expected["resultSha256"]


@pytest.mark.parametrize("path", ENGINE_VECTORS, ids=lambda p: p.stem)
def test_result_is_valid_against_the_schema(path: Path) -> None:
    result = run_vector(engine_vector(path))
    errors = [e.message for e in result_validator().iter_errors(result)]
    assert errors == []


def test_the_vectors_own_hashes_are_of_their_canonical_json() -> None:
    """Guards the comparison above: the vectors' hash is over the same canonical form."""
    for path in ENGINE_VECTORS:
        expected = load_vector(path)["expected"]["result"]
        if expected is not None:
            assert result_sha256(expected["backtestResult"]) == expected["resultSha256"]


def test_the_comparison_catches_what_section_9_7_forbids() -> None:
    """The vector tests are only as strict as `differences`; show it fails where it must."""
    expected = load_vector(ENGINE_VECTORS[1])["expected"]["result"]["backtestResult"]
    assert differences(expected, copy.deepcopy(expected)) == []
    cases: list[tuple[str, Any]] = [
        ("equityCurve", [expected["equityCurve"][0] * (1 + 1e-8), *expected["equityCurve"][1:]]),
        ("cyclesCompleted", float(expected["cyclesCompleted"])),
        ("totalReturn", None),
        ("notes", [*expected["notes"][:-1], expected["notes"][-1] + " "]),
        ("regimeSegments", expected["regimeSegments"][:-1]),
        ("finalPosition", {**expected["finalPosition"], "extra": 1}),
    ]
    for key, wrong in cases:
        changed = {**copy.deepcopy(expected), key: wrong}
        assert differences(expected, changed), key
    integral = {**copy.deepcopy(expected), "maxDrawdown": 0}
    assert differences({**expected, "maxDrawdown": 0.0}, integral), "an int is not a double"
    nearly = expected["equityCurve"][0] * (1 + 1e-10)
    within = {**copy.deepcopy(expected), "equityCurve": [nearly, *expected["equityCurve"][1:]]}
    assert differences(expected, within) == []

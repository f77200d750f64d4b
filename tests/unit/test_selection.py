"""Step selection (SPEC §3) and the run-level required subset (SPEC §1, §2)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from engine.cloudevent import doc_id_from_subject
from engine.errors import DocumentInvalid as FlowRunInvalid
from states.flow_run import source
from states.flow_run.contracts import RUN_ID_RE
from states.flow_run.source import parse_flow_run
from tests.contracts import load


def select(run, only=None):
    return source.select(run, "LLM_REPORT", only)


def run_id_from_subject(subject, collection):
    return doc_id_from_subject(subject, collection, RUN_ID_RE)


RUN_ID = "20251224-120000_BTCUSDT_a1b2c"
LLM = "llm_report_1M_month_summary_v1"


def vector() -> dict[str, Any]:
    doc: dict[str, Any] = copy.deepcopy(load("test_vectors/inputs/flow_run.ready_llm_report.json"))
    return doc


def test_ready_step_with_succeeded_dependencies_is_selected():
    assert select(parse_flow_run(RUN_ID, vector())).execute == LLM


@pytest.mark.parametrize("status", ["PENDING", "SUCCEEDED", "FAILED", "CANCELLED"])
def test_run_not_running_is_a_noop(status):
    doc = vector()
    doc["status"] = status
    assert select(parse_flow_run(RUN_ID, doc)).noop == source.RUN_NOT_RUNNING


@pytest.mark.parametrize("dep_status", ["RUNNING", "SKIPPED", "FAILED", "READY"])
def test_dependency_not_succeeded_blocks(dep_status):
    doc = vector()
    doc["steps"]["charts_1M_default_set_v1"]["status"] = dep_status
    selection = select(parse_flow_run(RUN_ID, doc))
    assert selection.execute is None
    assert selection.noop == source.DEPENDENCY_NOT_SUCCEEDED


def test_unknown_dependency_is_selected_so_it_can_be_failed():
    doc = vector()
    doc["steps"][LLM]["dependsOn"].append("no_such_step")
    assert select(parse_flow_run(RUN_ID, doc)).execute == LLM


def test_smallest_executable_step_wins_and_blocked_ones_are_skipped():
    doc = vector()
    doc["steps"]["b_llm"] = copy.deepcopy(doc["steps"][LLM])
    doc["steps"]["a_llm"] = copy.deepcopy(doc["steps"][LLM])
    doc["steps"]["a_llm"]["dependsOn"] = ["b_llm"]  # READY, not SUCCEEDED: blocked
    assert select(parse_flow_run(RUN_ID, doc)).execute == "b_llm"


def test_no_ready_step_lists_running_steps_for_recovery():
    doc = vector()
    doc["steps"][LLM]["status"] = "RUNNING"
    selection = select(parse_flow_run(RUN_ID, doc))
    assert selection.noop == source.NO_READY_STEP
    assert selection.probe == (LLM,)


def test_other_step_types_are_never_selected():
    doc = vector()
    doc["steps"][LLM]["stepType"] = "CHART_EXPORT"
    assert select(parse_flow_run(RUN_ID, doc)).noop == source.NO_READY_STEP


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        (f"documents/flow_runs/{RUN_ID}", RUN_ID),
        (f"projects/p/databases/(default)/documents/flow_runs/{RUN_ID}", RUN_ID),
        ("documents/flow_runs/not-a-run-id", None),
        (f"documents/other/{RUN_ID}", None),
        ("documents/flow_runs", None),
        ("", None),
    ],
)
def test_run_id_comes_from_the_segment_after_the_collection(subject, expected):
    assert run_id_from_subject(subject, "flow_runs") == expected


def test_collection_name_is_configurable():
    assert run_id_from_subject(f"documents/runs_v2/{RUN_ID}", "runs_v2") == RUN_ID


@pytest.mark.parametrize(
    ("mutate", "fragment"),
    [
        (lambda d: d["steps"].update({"a.b": d["steps"][LLM]}), "a.b"),
        (lambda d: d["steps"].update({"a/b": d["steps"][LLM]}), "a/b"),
        (lambda d: d.update(runId="20251224-120000_BTCUSDT_zzzzz"), "runId"),
        (lambda d: d.update(status="PAUSED"), "status"),
        (lambda d: d.pop("steps"), "steps"),
        (lambda d: d.update(steps=[]), "steps"),
    ],
)
def test_required_subset_violations_are_flow_run_invalid(mutate, fragment):
    doc = vector()
    mutate(doc)
    with pytest.raises(FlowRunInvalid) as err:
        parse_flow_run(RUN_ID, doc)
    assert fragment in err.value.message


def test_unknown_fields_are_tolerated():
    doc = vector()
    doc["somethingNew"] = {"x": 1}
    doc["steps"][LLM]["extra"] = True
    assert parse_flow_run(RUN_ID, doc).steps[LLM].status == "READY"


def test_chart_step_ids_with_colons_are_storage_safe():
    doc = vector()
    doc["steps"]["charts:1M:ctpl_price_ma1226_vol_v1"] = doc["steps"].pop(
        "charts_1M_default_set_v1"
    )
    doc["steps"][LLM]["dependsOn"] = [
        "ohlcv_1M_bigquery_all_v1",
        "charts:1M:ctpl_price_ma1226_vol_v1",
    ]
    assert select(parse_flow_run(RUN_ID, doc)).execute == LLM

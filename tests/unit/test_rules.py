"""Domain rules with no services: llmProfile, schema invariants, UserInput, structured output,
artifact paths and the time budget."""

from __future__ import annotations

import json

import pytest

from engine.budget import TimeBudget
from engine.errors import Failure as StepFailure
from states.llm_client.assemble import user_input
from states.llm_client.config import LlmConfig as WorkerConfig
from states.llm_client.contracts import ChartItem
from states.llm_client.errors import ErrorCode
from states.llm_client.phases import Invalid
from states.llm_client.resolve import (
    canonical_sha256,
    check_timeframe,
    profile,
    schema_problem,
    schema_version,
)
from states.llm_client.unit import report_uri as artifact_uri
from states.llm_client.validate import describe, failure_message, schema_errors
from tests.contracts import load, text

SCHEMA = load("examples/llm_schema.example.json")
GOOD_PROFILE = {
    "modelName": "gemini-2.0-flash",
    "temperature": 0.2,
    "candidateCount": 1,
    "maxOutputTokens": 2048,
    "responseMimeType": "application/json",
    "structuredOutput": {"schemaId": "llm_schema_1M_report_v1_0", "kind": "LLM_REPORT_OUTPUT"},
}


def failure_code(fn, *args) -> str:
    with pytest.raises(StepFailure) as err:
        fn(*args)
    return err.value.code


def test_good_profile_passes_as_given():
    raw, parsed = profile(GOOD_PROFILE, ())
    assert raw is GOOD_PROFILE
    assert parsed.effective_model == "gemini-2.0-flash"


@pytest.mark.parametrize(
    "change",
    [
        {"responseMimeType": "text/markdown"},
        {"responseMimeType": None},
        {"candidateCount": 2},
        {"structuredOutput": None},
        {"structuredOutput": {"schemaId": "my_schema"}},
        {"structuredOutput": {"schemaId": "llm_schema_1M_report_v1_0", "extra": 1}},
        {"unknownKey": True},
        {"modelName": None, "model": None},
        {"temperature": "hot"},
    ],
)
def test_profile_violations_are_llm_profile_invalid(change):
    raw = {**GOOD_PROFILE, **change}
    raw = {k: v for k, v in raw.items() if v is not None}
    assert failure_code(profile, raw, ()) == ErrorCode.LLM_PROFILE_INVALID


def test_model_allowlist():
    assert profile(GOOD_PROFILE, ("gemini-2.0-flash",))[1].effective_model == "gemini-2.0-flash"
    assert failure_code(profile, GOOD_PROFILE, ("gemini-2.5-pro",)) == ErrorCode.LLM_PROFILE_INVALID


def test_deprecated_model_alias_is_accepted():
    raw = {**GOOD_PROFILE, "model": "gemini-x"}
    del raw["modelName"]
    assert profile(raw, ())[1].effective_model == "gemini-x"


def test_schema_version_is_the_major_after_v():
    assert schema_version("llm_schema_1M_report_v3_2") == 3
    assert schema_version("llm_schema_1M_report_depth5_v4_0") == 4


@pytest.mark.parametrize(
    "name",
    [
        "llm_schema.example.json",
        "llm_schema.llm_report_output_v3.json",
        "llm_schema.llm_report_output_v4_depth5.json",
        "llm_schema.llm_report_output_v5_min.json",
    ],
)
def test_contract_schemas_meet_the_invariants_and_their_sha(name):
    doc = load(f"examples/{name}")
    assert schema_problem(doc["jsonSchema"]) is None
    assert canonical_sha256(doc["jsonSchema"]) == doc["sha256"]


def test_schema_without_summary_markdown_string_is_rejected():
    schema = json.loads(json.dumps(SCHEMA["jsonSchema"]))
    schema["properties"]["summary"]["properties"]["markdown"]["type"] = "object"
    assert schema_problem(schema) == "summary_markdown_not_string"
    schema = json.loads(json.dumps(SCHEMA["jsonSchema"]))
    schema["required"] = ["summary"]
    assert schema_problem(schema) == "missing_required_summary_details"
    assert schema_problem({"type": 12}) == "not_a_json_schema"


def test_user_input_layout_is_exactly_the_spec():
    charts = [
        ChartItem(kind="price + MA12/26 + Volume", png_gcs_uri="gs://b/1.png"),
        ChartItem(chart_template_id="ctpl_rsi_v1", png_gcs_uri="gs://b/2.png"),
    ]
    built = user_input(
        timeframe="1M",
        ohlcv={"candles": [[1, 2.5]]},
        charts=charts,
        reports=[("external", "gs://r/prev.json", {"summary": {"markdown": "é"}})],
    )
    assert built == (
        "<context>\n"
        "  <data_type>1M OHLCV Candles (JSON)</data_type>\n"
        "  <content>\n"
        '    {"candles":[[1,2.5]]}\n'
        "  </content>\n"
        "</context>\n"
        "\n"
        "<context>\n"
        "  <data_type>Technical Charts (Images)</data_type>\n"
        "  <content>\n"
        "    [Images attached to this message with description]\n"
        "    - price + MA12/26 + Volume\n"
        "    - ctpl_rsi_v1\n"
        "  </content>\n"
        "</context>\n"
        "\n"
        "<context>\n"
        "  <data_type>Previous Report (external, uri: gs://r/prev.json) (JSON)</data_type>\n"
        "  <content>\n"
        '    {"summary":{"markdown":"é"}}\n'
        "  </content>\n"
        "</context>\n"
        "\n"
        "<task>\n"
        "Based on the context above, perform the analysis for `symbol`, `timeframe` defined in"
        " the System Instructions.\n"
        "Generate the full report in JSON.\n"
        "</task>"
    )


@pytest.mark.parametrize(
    ("fixture", "expected_patch"),
    [
        ("missing_required.json", "missing_required"),
        ("wrong_type.json", "wrong_type"),
    ],
)
def test_schema_validation_messages_match_the_contract_vectors(fixture, expected_patch):
    value = json.loads(text(f"fixtures/structured_output_invalid/{fixture}"))
    errors = schema_errors(SCHEMA["jsonSchema"], value)
    invalid = Invalid("schema_validation", describe(errors[0]), [], 1, None)
    expected = load(
        "test_vectors/outputs/step_llm_report.failed_invalid_structured_output."
        f"{expected_patch}.patch.example.json"
    )["steps.<stepId>.error"]["message"]
    assert failure_message(invalid, "STOP") == expected


def test_json_parse_message_matches_the_contract_vector():
    raw = text("fixtures/structured_output_invalid/truncated_json.txt")
    with pytest.raises(ValueError):
        json.loads(raw)
    expected = load(
        "test_vectors/outputs/"
        "step_llm_report.failed_invalid_structured_output.truncated_json.patch.example.json"
    )["steps.<stepId>.error"]["message"]
    assert failure_message(Invalid("json_parse", "", [], 1, None), "MAX_TOKENS") == expected


def config(prefix: str) -> WorkerConfig:
    return WorkerConfig.from_env(
        {"ARTIFACTS_BUCKET": "bkt", "GEMINI_API_KEY": "k", "ARTIFACTS_PREFIX": prefix}
    )


@pytest.mark.parametrize(
    ("prefix", "uri"),
    [
        ("", "gs://bkt/R/1M/s.json"),
        ("   ", "gs://bkt/R/1M/s.json"),
        ("/reports/", "gs://bkt/reports/R/1M/s.json"),
        ("a//b/", "gs://bkt/a/b/R/1M/s.json"),
    ],
)
def test_artifact_prefix_is_normalized(prefix, uri):
    assert artifact_uri(config(prefix), "R", "1M", "s") == uri


def test_step_timeframe_must_agree_with_the_step_id():
    check_timeframe("llm_report_1M_month_summary_v1", "1M")
    check_timeframe("summary_without_timeframe", "1d")
    assert failure_code(check_timeframe, "llm_report_1M_x", "1w") == ErrorCode.INVALID_STEP_INPUTS
    assert failure_code(check_timeframe, "llm_report_x", None) == ErrorCode.INVALID_STEP_INPUTS


def test_budget_refuses_calls_inside_the_finalize_budget():
    clock = [0.0]
    budget = TimeBudget(780, 120, monotonic=lambda: clock[0])
    assert budget.require("gemini") == pytest.approx(660)
    assert budget.cap(600) == pytest.approx(600)
    clock[0] = 200
    assert budget.cap(600) == pytest.approx(460)
    clock[0] = 661
    assert failure_code(budget.require, "gemini") == ErrorCode.TIME_BUDGET_EXCEEDED


def test_an_unknown_thinking_level_is_a_profile_error_not_a_crash():
    from adapters.gemini import generation_config
    from states.llm_client.generate import fault_failure
    from states.llm_client.ports import LLMCallFailed, LLMRequest

    _, parsed = profile({**GOOD_PROFILE, "thinkingConfig": {"thinkingLevel": "EXTREME"}}, ())
    request = LLMRequest(
        model="m",
        system_instruction="s",
        user_text="u",
        images=[],
        profile=parsed,
        response_json_schema={},
    )
    with pytest.raises(LLMCallFailed) as err:
        generation_config(request, 10)
    assert fault_failure(err.value)[0] == ErrorCode.LLM_PROFILE_INVALID
    _, known = profile({**GOOD_PROFILE, "thinkingConfig": {"thinkingLevel": "LOW"}}, ())
    assert (
        generation_config(
            LLMRequest(
                model="m",
                system_instruction="s",
                user_text="u",
                images=[],
                profile=known,
                response_json_schema={},
            ),
            10,
        ).thinking_config.thinking_level.name
        == "LOW"
    )

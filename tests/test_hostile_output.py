"""Model output and inputs that try to reach Firestore, the logs or the stack (issue 8).

Through functions-framework against the emulators and the Gemini stub: keys the model chose
never appear in a stored message or a log line, every stored message is capped, and NaN,
Infinity or deep nesting are invalid JSON rather than a crash.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from devstack.gemini_stub import ok
from tests import scenario
from tests.conftest import World
from tests.contracts import load

LOOSE_DETAILS = {"type": "object", "additionalProperties": {"type": "string"}}


def with_schema(world: World, schema_id: str, details: dict[str, Any]) -> dict[str, Any]:
    """Seeds the world with a registry schema of its own (registry documents are immutable and
    cached per instance, so each variant gets an id of its own) and returns the flow run."""
    schema = copy.deepcopy(load("examples/llm_schema.example.json"))
    schema["schemaId"] = schema_id
    schema["jsonSchema"]["properties"]["details"] = details
    doc = scenario.flow_run()
    llm = doc["steps"][scenario.STEP]["inputs"]["llm"]
    llm["llmProfile"]["structuredOutput"]["schemaId"] = schema_id
    scenario.seed(world.db, world.gcs, doc)
    world.db.collection("llm_schemas").document(schema_id).set(schema)
    return doc


def run(world: World, doc: dict[str, Any], *texts: str) -> tuple[dict[str, Any], str]:
    world.gemini.script(*[ok(text) for text in texts])
    mark = world.server.mark()
    assert world.deliver(doc) == 200
    return scenario.step_of(world.db), world.server.log_text(since=mark)


def test_a_key_chosen_by_the_model_never_reaches_the_message_or_the_logs(world: World):
    doc = with_schema(world, "llm_schema_1M_report_v81_0", LOOSE_DETAILS)
    key = "K" * 1_000_000  # a message that large used to strand the finalize
    output = {"summary": {"markdown": "m"}, "details": {key: 42}}

    step, logs = run(world, doc, json.dumps(output), json.dumps(output))

    error = step["error"]
    assert (step["status"], error["code"]) == ("FAILED", "INVALID_STRUCTURED_OUTPUT")
    assert error["message"] == (
        "structured_output_invalid kind=schema_validation path=details.<key> expected=string"
    )
    assert "KKKKKKKK" not in logs
    assert "KKKKKKKK" not in json.dumps(step)
    assert len(world.gemini.requests) == 2
    repair = world.gemini.requests[1].body["contents"][0]["parts"][0]["text"]
    assert "- details.<key>: path=details.<key> expected=string" in repair


def test_a_long_schema_side_message_is_capped(world: World):
    long_name = "p" * 700  # a registry schema may name properties at length
    details = {
        "type": "object",
        "required": [long_name],
        "properties": {long_name: {"type": "string"}},
    }
    doc = with_schema(world, "llm_schema_1M_report_v82_0", details)
    output = json.dumps({"summary": {"markdown": "m"}, "details": {}})

    step, _ = run(world, doc, output, output)

    message = step["error"]["message"]
    assert step["error"]["code"] == "INVALID_STRUCTURED_OUTPUT"
    assert len(message) <= 500 and len(message.encode("utf-8")) <= 512
    assert message.startswith("structured_output_invalid kind=schema_validation missing=details.")


@pytest.mark.parametrize(
    "text",
    [
        '{"summary": {"markdown": "m"}, "details": {"x": NaN}}',
        '{"summary": {"markdown": "m"}, "details": {"x": Infinity}}',
        '{"summary": {"markdown": "m"}, "details": ' + "[" * 50_000 + "]" * 50_000 + "}",
    ],
    ids=["nan", "infinity", "deep_nesting"],
)
def test_odd_json_from_the_model_is_repaired_like_any_parse_error(world: World, text: str):
    doc = scenario.seed(world.db, world.gcs)

    step, logs = run(world, doc, text, scenario.report_text())

    assert step["status"] == "SUCCEEDED"
    assert step["outputs"]["execution"]["llm"]["attempts"] == {"total": 2}
    invalid = [
        json.loads(line)
        for line in logs.splitlines()
        if '"structured_output_invalid"' in line and line.startswith("{")
    ]
    assert [e["reason"]["kind"] for e in invalid] == ["json_parse"]
    report = json.loads(scenario.objects(world.gcs)[scenario.ARTIFACT_URI])
    assert report["output"] == scenario.REPORT_OUTPUT


def test_deeply_nested_input_json_is_invalid_step_inputs(world: World):
    doc = scenario.seed(world.db, world.gcs)
    deep = b"[" * 30_000 + b"]" * 30_000  # 60 KB: within the 64 KiB input limit
    uri = scenario.flow_run()["steps"][scenario.OHLCV_STEP]["outputs"]["gcs_uri"]
    scenario.upload(world.gcs, uri, deep)

    step, _ = run(world, doc)

    assert (step["status"], step["error"]["code"]) == ("FAILED", "INVALID_STEP_INPUTS")
    assert "nested" in step["error"]["message"]
    assert world.gemini.requests == []


CATASTROPHIC = {
    "type": "object",
    "properties": {"code": {"type": "string", "pattern": "^(a+)+$"}},
}


def test_a_catastrophic_pattern_is_matched_in_linear_time(world: World):
    """`^(a+)+$` against thirty-odd a's and a '!' takes Python's `re` minutes; RE2 answers at
    once, the repair call gets its chance, and the step succeeds."""
    doc = with_schema(world, "llm_schema_1M_report_v83_0", CATASTROPHIC)
    hostile = {"summary": {"markdown": "m"}, "details": {"code": "a" * 40 + "!"}}
    good = {"summary": {"markdown": "m"}, "details": {"code": "aaa"}}
    world.gemini.script(ok(json.dumps(hostile)), ok(json.dumps(good)))

    status = world.deliver(doc)

    assert status == 200
    step = scenario.step_of(world.db)
    assert step["status"] == "SUCCEEDED"
    assert step["outputs"]["execution"]["llm"]["attempts"] == {"total": 2}


@pytest.mark.parametrize(
    "details",
    [
        {"type": "object", "properties": {"x": {"type": "string", "pattern": "^(a)\\1$"}}},
        {"type": "object", "patternProperties": {"(?=x)": {"type": "string"}}},
        {
            "type": "object",
            "patternProperties": {"^x": {"type": "string"}},
            "unevaluatedProperties": False,
        },
    ],
    ids=["backreference", "lookahead", "unevaluated_with_pattern_properties"],
)
def test_a_schema_the_linear_engine_cannot_take_is_refused_before_any_call(
    world: World, details: dict[str, Any], request: pytest.FixtureRequest
):
    suffix = {"backreference": 84, "lookahead": 85}.get(request.node.callspec.id, 86)
    doc = with_schema(world, f"llm_schema_1M_report_v{suffix}_0", details)

    step, _ = run(world, doc)

    assert (step["status"], step["error"]["code"]) == ("FAILED", "LLM_PROFILE_INVALID")
    assert "pattern_not_linear_time" in step["error"]["message"]
    assert world.gemini.requests == []


def manifest_of(world: World, uris: list[str]) -> None:
    """Replaces the charts manifest by a small one listing `uris` (short items)."""
    uri = scenario.flow_run()["steps"][scenario.CHARTS_STEP]["outputs"]["gcs_uri"]
    items = [{"png_gcs_uri": image} for image in uris]
    scenario.upload(world.gcs, uri, json.dumps({"items": items}, separators=(",", ":")).encode())


def test_one_image_listed_a_thousand_times_is_read_and_sent_once(world: World):
    doc = scenario.seed(world.db, world.gcs)
    image = f"gs://{scenario.BUCKET}/c/p.png"
    scenario.upload(world.gcs, image, scenario.png(8, 6, (1, 2, 3)), "image/png")
    manifest_of(world, [image] * 1000)

    step, logs = run(world, doc, scenario.report_text())

    assert step["status"] == "SUCCEEDED"
    parts = world.gemini.requests[0].body["contents"][0]["parts"]
    assert len([p for p in parts if "inlineData" in p]) == 1
    assert logs.count('"event":"chart_image_loaded"') == 1


def test_more_than_sixteen_distinct_images_fail_before_any_is_read(world: World):
    doc = scenario.seed(world.db, world.gcs)
    images = [f"gs://{scenario.BUCKET}/c/{n}.png" for n in range(17)]
    for image in images:
        scenario.upload(world.gcs, image, scenario.png(2, 2, (9, 9, 9)), "image/png")
    manifest_of(world, images)

    step, logs = run(world, doc)

    assert (step["status"], step["error"]["code"]) == ("FAILED", "INVALID_STEP_INPUTS")
    assert "17 distinct images; at most 16" in step["error"]["message"]
    assert '"chart_image_loaded"' not in logs
    assert world.gemini.requests == []

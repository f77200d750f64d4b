"""The failure-path vectors of SPEC §2 to §12, each a small data file in `tests/vectors/`.

Every vector is run through functions-framework against the emulators and the Gemini stub;
its expectations (final step status, error code, Gemini call count, ...) are asserted, and the
ordered Firestore writes, the log event names and the artifact are snapshotted per vector.
Vector file format: see `tests/vectors/README.md`.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from devstack.gemini_stub import Reply, error, ok
from tests import scenario
from tests.conftest import FAKE_GEMINI_API_KEY, World
from tests.contracts import CONTRACTS, load, text

VECTORS = Path(__file__).resolve().parent / "vectors"
UNSTABLE_EVENTS = {"worker_configured"}
REPORT_SCHEMA = load("llm_report_file.schema.json")
# Vectors whose snapshot also pins each log entry's severity and field names (SPEC §13).
LOG_DETAIL = {"contract_succeeded", "output_wrong_type_twice", "gemini_429", "run_invalid_status"}
VOLATILE = {"time", "eventId"}  # emitted once per process, not per event


def vector_files() -> list[Path]:
    return sorted(VECTORS.glob("*.json"))


def apply_ops(doc: dict[str, Any], ops: dict[str, Any]) -> dict[str, Any]:
    """`set`/`delete` on dotted (or list) paths; lists allow keys that contain dots."""
    doc = copy.deepcopy(doc)

    def split(path: str | list[str]) -> list[str]:
        return path if isinstance(path, list) else path.split(".")

    for path, value in ops.get("set", []):
        keys = split(path)
        node = doc
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        node[keys[-1]] = value
    for path in ops.get("delete", []):
        keys = split(path)
        node = doc
        for key in keys[:-1]:
            node = node[key]
        del node[keys[-1]]
    for old, new in ops.get("rename", []):
        keys = split(old)
        node = doc
        for key in keys[:-1]:
            node = node[key]
        node[new] = node.pop(keys[-1])
    return doc


def object_bytes(spec: dict[str, Any]) -> tuple[bytes, str]:
    if "contract" in spec:
        return (CONTRACTS / spec["contract"]).read_bytes(), "application/json"
    if "json" in spec:
        return json.dumps(spec["json"]).encode(), "application/json"
    if "text" in spec:
        return spec["text"].encode(), "application/json"
    if "jsonOfSize" in spec:
        filler = "x" * (spec["jsonOfSize"] - len('{"pad":""}'))
        return json.dumps({"pad": filler}, separators=(",", ":")).encode(), "application/json"
    if "pngOfSize" in spec:
        image = scenario.png(4, 4, (1, 2, 3))
        return image + b"\x00" * (spec["pngOfSize"] - len(image)), "image/png"
    raise ValueError(f"unknown object spec {spec}")


def reply(spec: dict[str, Any]) -> Reply:
    if "status" in spec:
        return error(spec["status"], spec["statusText"], "scripted fault", spec.get("delay", 0.0))
    if "fixture" in spec:
        body_text = text(spec["fixture"])
    elif "output" in spec:
        body_text = json.dumps(spec["output"])
    else:
        body_text = spec.get("text", scenario.report_text())
    made = ok(
        body_text, finish_reason=spec.get("finishReason", "STOP"), delay=spec.get("delay", 0.0)
    )
    body = dict(made.body)
    for key in spec.get("omit", []):
        body.pop(key, None)
    if spec.get("noContent"):
        body["candidates"][0].pop("content")
    made = dataclasses.replace(made, body=body)
    return made


def seed(world: World, vector: dict[str, Any]) -> tuple[dict[str, Any], str]:
    base = load(vector["flowRunFile"]) if "flowRunFile" in vector else scenario.flow_run()
    doc = apply_ops(base, vector.get("flowRun", {}))
    run_id = base.get("runId", scenario.RUN_ID)
    scenario.seed(world.db, world.gcs, doc if "steps" in doc else scenario.flow_run())
    if run_id != scenario.RUN_ID or "steps" not in doc:
        world.db.collection("flow_runs").document(scenario.RUN_ID).delete()
    world.db.collection("flow_runs").document(run_id).set(doc)
    # Registry documents are immutable by contract and cached per instance, so a vector that
    # needs a different schema seeds it under an id of its own.
    for schema_id, ops in vector.get("schemas", {}).items():
        schema = apply_ops(load("examples/llm_schema.example.json"), ops)
        world.db.collection("llm_schemas").document(schema_id).set(
            {**schema, "schemaId": schema_id}
        )
    for uri, spec in vector.get("objects", {}).items():
        data, content_type = object_bytes(spec)
        scenario.upload(world.gcs, uri, data, content_type)
    return doc, run_id


def leaves(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict) and value:
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(leaves(item, f"{prefix}.{key}" if prefix else key))
        return out
    return {prefix: value}


# Fields SPEC §11 adds to `outputs.execution.llm` that the older success example predates.
DOCUMENTED_EXTRAS = {"outputs.execution.llm.attempts.total"}


def assert_matches_contract_patch(final_write: dict[str, Any], name: str, step_id: str) -> None:
    """Field for field, timestamps and durations aside (SPEC §4 expected patches)."""
    example = load(f"test_vectors/outputs/{name}")
    prefix = f"steps.{step_id}."
    expected = leaves({k.replace("steps.<stepId>.", ""): v for k, v in example.items()})
    actual = leaves({k.removeprefix(prefix): v for k, v in final_write["fields"].items()})
    skip = ("finishedAt", "startedAt", "durationMs")
    expected = {k: v for k, v in expected.items() if not k.endswith(skip)}
    actual = {k: v for k, v in actual.items() if not k.endswith(skip)}
    extras = set(actual) - set(expected)
    assert extras <= DOCUMENTED_EXTRAS, f"fields not in {name}: {sorted(extras)}"
    assert {k: actual.get(k) for k in expected} == expected


def secrets_of(vector: dict[str, Any]) -> list[str]:
    """What must never reach the logs: prompt texts, model output, the API key (SPEC §13)."""
    prompt = load("examples/llm_prompt.example.json")
    found = [prompt["systemInstruction"][:80], prompt["userPrompt"][:80], FAKE_GEMINI_API_KEY]
    for spec in vector.get("gemini", []):
        if "status" not in spec:
            found.append(
                reply(spec)
                .body["candidates"][0]
                .get("content", {"parts": [{"text": ""}]})["parts"][0]["text"]
            )
    return [s for s in found if len(s) >= 8]


def assert_no_leaks(output: str, vector: dict[str, Any]) -> None:
    for secret in secrets_of(vector):
        for form in (secret, json.dumps(secret)[1:-1]):
            assert form not in output, "a prompt, a model output or the API key reached the logs"


@pytest.mark.parametrize("path", vector_files(), ids=lambda p: p.stem)
def test_vector(path: Path, world: World, snapshot):
    vector = json.loads(path.read_text(encoding="utf-8"))
    if "env" in vector:
        world.server = world.start_function(vector["env"])
        # A cold process builds its clients inside its first invocation, and the budget counts
        # that; warm it (a read for a missing run) so the timing vectors measure the step only.
        world.deliver(None, run_id="20000101-000000_WARMUP_x0x")
    doc, run_id = seed(world, vector)
    world.gemini.script(*[reply(r) for r in vector.get("gemini", [])])
    before = scenario.objects(world.gcs)
    mark, log_mark = world.journal.mark(), world.server.mark()

    for event in vector.get("events", [{}]):
        assert world.deliver(
            doc,
            run_id=event.get("runId", run_id),
            **{k: v for k, v in event.items() if k != "runId"},
        ) == event.get("httpStatus", 200)

    expect = vector["expect"]
    writes = world.journal.since(mark)
    stored = world.db.collection("flow_runs").document(run_id).get()
    step_id = expect.get("stepId", scenario.STEP)
    step = (stored.to_dict() or {}).get("steps", {}).get(step_id, {}) if stored.exists else {}
    if "step" in expect:
        assert step.get("status") == expect["step"]
    if "code" in expect:
        assert (step.get("error") or {}).get("code") == expect["code"]
    if "message" in expect:
        assert step["error"]["message"] == expect["message"]
    if "runError" in expect:
        assert (stored.to_dict().get("error") or {}).get("code") == expect["runError"]
    if expect.get("noWrites"):
        assert writes == []
    if "attempts" in expect:
        assert step["outputs"]["execution"]["llm"]["attempts"]["total"] == expect["attempts"]
    assert len(world.gemini.requests) == expect["geminiCalls"]
    for needle in expect.get("requestContains", []):
        assert needle in world.gemini.requests[0].body["contents"][0]["parts"][0]["text"]
    if "images" in expect:
        parts = world.gemini.requests[0].body["contents"][0]["parts"]
        assert len([p for p in parts if "inlineData" in p]) == expect["images"]
    if "contractPatch" in expect:
        assert_matches_contract_patch(writes[-1], expect["contractPatch"], step_id)

    after = scenario.objects(world.gcs)
    created = {uri: data for uri, data in after.items() if before.get(uri) != data}
    if expect.get("artifactUnchanged"):
        assert created == {}
    for data in created.values():
        jsonschema.validate(
            json.loads(data), REPORT_SCHEMA, format_checker=jsonschema.FormatChecker()
        )
    for entry in world.server.log_json_lines(since=log_mark, stream="both"):
        flags = {"uncatalogued", "missingFields", "payloadRejected"} & set(entry)
        assert not flags, f"{entry.get('event')}: {flags}"
    assert_no_leaks(world.server.log_text(since=log_mark), vector)
    names = [
        e["event"]
        for e in world.server.log_json_lines(since=log_mark)
        if e.get("event") not in UNSTABLE_EVENTS
    ]
    recorded: dict[str, Any] = {
        "writes": scenario.normalized(writes),
        "events": names,
        "artifacts": {uri: scenario.normalized(json.loads(data)) for uri, data in created.items()},
    }
    if path.stem in LOG_DETAIL:
        recorded["log"] = [
            [e["event"], e["severity"], sorted(set(e) - VOLATILE)]
            for e in world.server.log_json_lines(since=log_mark)
            if e.get("event") not in UNSTABLE_EVENTS
        ]
    assert recorded == snapshot


def test_every_contract_fixture_has_a_failing_twice_vector():
    fixtures = {p.name for p in (CONTRACTS / "fixtures/structured_output_invalid").iterdir()}
    used = (
        {
            r["fixture"].rsplit("/", 1)[-1]
            for p in vector_files()
            for r in json.loads(p.read_text()).get("gemini", [])
            if "fixture" in r
        }
        if vector_files()
        else set()
    )
    assert fixtures <= used

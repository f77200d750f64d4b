"""Property-based fuzzing of flow run documents and CloudEvents through the handler.

Runs in-process against the Firestore emulator and fake-gcs (real preconditions), with a model
that answers randomly. For any input: no unhandled exception, every outcome is a no-op or a
catalogued code, and no step is left RUNNING that was not RUNNING before.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from cloudevents.http import CloudEvent
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from adapters.cloudevents import to_event
from devstack.cloudevents import firestore_update_event
from engine.errors import Ignored, NoOp
from states.flow_run import source
from states.llm_client.errors import ErrorCode
from states.llm_client.ports import LLMCallFailed, LLMRequest, LLMResponse
from tests import scenario
from tests.contracts import load
from tests.fakes import worker

CATALOGUED = (
    {str(c) for c in ErrorCode}
    | {str(n) for n in NoOp}
    | {str(i) for i in Ignored}
    | {
        source.FLOW_RUN_NOT_FOUND,
        source.RUN_NOT_RUNNING,
        source.NO_READY_STEP,
        source.DEPENDENCY_NOT_SUCCEEDED,
        "probe_failed",
        "claim_outcome_unknown",
    }
)
FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
STEP_IDS = [scenario.STEP, scenario.OHLCV_STEP, scenario.CHARTS_STEP]
ATTRIBUTES = {
    "id": "fuzz",
    "source": "//firestore.googleapis.com/projects/demo-tda/databases/(default)",
    "type": "google.cloud.firestore.document.v1.updated",
    "subject": f"documents/flow_runs/{scenario.RUN_ID}",
    "specversion": "1.0",
}

keys = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=10
).filter(lambda k: not k.startswith("__"))
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=24)
)
# Firestore stores no array directly inside an array: lists hold scalars and maps only.
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(scalars | st.dictionaries(keys, inner, max_size=3), max_size=3)
        | st.dictionaries(keys, inner, max_size=3)
    ),
    max_leaves=8,
)
statuses = st.sampled_from(
    ["PENDING", "READY", "RUNNING", "SUCCEEDED", "FAILED", "SKIPPED", "CANCELLED", "bogus"]
)
PATHS = [
    ("status",),
    ("runId",),
    ("scope",),
    ("steps", scenario.STEP, "status"),
    ("steps", scenario.STEP, "stepType"),
    ("steps", scenario.STEP, "dependsOn"),
    ("steps", scenario.STEP, "timeframe"),
    ("steps", scenario.STEP, "inputs"),
    ("steps", scenario.STEP, "inputs", "llm"),
    ("steps", scenario.STEP, "inputs", "llm", "promptId"),
    ("steps", scenario.STEP, "inputs", "llm", "llmProfile"),
    ("steps", scenario.STEP, "inputs", "llm", "llmProfile", "responseMimeType"),
    ("steps", scenario.STEP, "inputs", "llm", "llmProfile", "structuredOutput"),
    ("steps", scenario.STEP, "inputs", "ohlcvStepId"),
    ("steps", scenario.STEP, "inputs", "previousReports"),
    ("steps", scenario.STEP, "outputs"),
    ("steps", scenario.CHARTS_STEP, "status"),
    ("steps", scenario.CHARTS_STEP, "outputs"),
    ("steps", scenario.OHLCV_STEP, "outputs", "gcs_uri"),
]


@st.composite
def flow_runs(draw: st.DrawFn) -> dict[str, Any]:
    doc = scenario.flow_run()
    for _ in range(draw(st.integers(min_value=0, max_value=4))):
        path = draw(st.sampled_from(PATHS))
        node: Any = doc
        for key in path[:-1]:
            if not isinstance(node, dict):
                break
            node = node.setdefault(key, {})
        if not isinstance(node, dict):
            continue
        action = draw(st.sampled_from(["set", "delete", "status"]))
        if action == "delete":
            node.pop(path[-1], None)
        elif action == "status":
            node[path[-1]] = draw(statuses)
        else:
            node[path[-1]] = draw(json_values)
    if draw(st.booleans()):
        extra = draw(st.sampled_from(["a.b", "x/y", "charts:1M:ok", "other_llm_v1"]))
        doc.setdefault("steps", {}) if isinstance(doc.get("steps"), dict) else None
        if isinstance(doc.get("steps"), dict):
            doc["steps"][extra] = copy.deepcopy(scenario.flow_run()["steps"][scenario.STEP])
            doc["steps"][extra]["status"] = draw(statuses)
    return doc


class RandomModel:
    def __init__(self, choice: int) -> None:
        self.choice = choice

    def generate(self, request: LLMRequest, timeout_s: float) -> LLMResponse:
        kind = self.choice % 5
        if kind == 0:
            return LLMResponse(text=scenario.report_text(), finish_reason="STOP")
        if kind == 1:
            return LLMResponse(text='{"summary": 1', finish_reason="MAX_TOKENS")
        if kind == 2:
            return LLMResponse(text=None, finish_reason="SAFETY")
        if kind == 3:
            raise LLMCallFailed("rate_limited", 429)
        return LLMResponse(text=json.dumps({"summary": {}, "details": []}), finish_reason="STOP")


def statuses_of(db: Any) -> dict[str, Any]:
    snap = db.collection("flow_runs").document(scenario.RUN_ID).get()
    steps = (snap.to_dict() or {}).get("steps") if snap.exists else None
    if not isinstance(steps, dict):
        return {}
    return {k: v.get("status") if isinstance(v, dict) else None for k, v in steps.items()}


def assert_catalogued(outcome: Any) -> None:
    event(f"{outcome.status}: {outcome.reason}")
    assert outcome.status in ("noop", "ok", "failed")
    assert outcome.reason is None or outcome.reason in CATALOGUED | {"stranded"}, outcome


@FUZZ
@given(doc=flow_runs(), model=st.integers(min_value=0, max_value=4), with_value=st.booleans())
def test_any_flow_run_document(firestore, gcs, doc, model, with_value):
    scenario.seed(firestore, gcs, scenario.flow_run())
    firestore.collection("flow_runs").document(scenario.RUN_ID).set(doc)
    before = statuses_of(firestore)
    w, _ = worker(firestore, gcs, RandomModel(model))
    _, body = firestore_update_event(
        project="demo-tda", run_id=scenario.RUN_ID, document=doc if with_value else None
    )
    outcome = w.handle(to_event(CloudEvent(ATTRIBUTES, body), "demo-tda"))
    assert_catalogued(outcome)
    after = statuses_of(firestore)
    stuck = [s for s, status in after.items() if status == "RUNNING" and before.get(s) != "RUNNING"]
    assert stuck == [], f"left RUNNING: {stuck}"
    if outcome.status == "failed" and outcome.unit_id:
        step = firestore.collection("flow_runs").document(scenario.RUN_ID).get().to_dict()
        error = step["steps"][outcome.unit_id].get("error") or {}
        assert error.get("code") in {str(c) for c in ErrorCode}


@FUZZ
@given(
    event_type=st.sampled_from(
        [
            "google.cloud.firestore.document.v1.updated",
            "google.cloud.firestore.document.v1.deleted",
            "google.cloud.storage.object.v1.finalized",
            "",
        ]
    ),
    subject=st.one_of(
        st.text(max_size=60),
        st.just(f"documents/flow_runs/{scenario.RUN_ID}"),
        st.builds(lambda s: f"documents/flow_runs/{s}", st.text(max_size=30)),
    ),
    body=st.one_of(st.none(), st.binary(max_size=64)),
)
def test_any_cloud_event(firestore, gcs, event_type, subject, body):
    scenario.seed(firestore, gcs, scenario.flow_run())
    w, _ = worker(firestore, gcs, RandomModel(0))
    attributes = {"id": "fuzz", "source": "s", "type": event_type or "x", "specversion": "1.0"}
    if subject:
        attributes["subject"] = subject
    outcome = w.handle(to_event(CloudEvent(attributes, body), "demo-tda"))
    assert_catalogued(outcome)
    assert "RUNNING" not in statuses_of(firestore).values()


# --- hostile model output -----------------------------------------------------------------------

STRICT_SCHEMA_ID = "llm_schema_1M_report_v90_0"
# Drawn keys start with an invisible separator (U+2063), which nothing the worker logs or stores
# contains: hypothesis also draws string literals of the code base (and mutations of them, such
# as "OHLCV_EX" of "OHLCV_EXPORT"), and such a key is found in the logs without any leak.
KEY_MARK = "\u2063"
hostile_keys = st.one_of(
    st.text(min_size=8, max_size=40).map(lambda k: KEY_MARK + k),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=8, max_size=12).map(
        lambda k: KEY_MARK + k * 40
    ),
    st.sampled_from(["summary.markdown", "$ref", "<key>", "details", "a" * 5000]),
)


@st.composite
def hostile_outputs(draw: st.DrawFn) -> tuple[str, list[str]]:
    """Model text built to escape: chosen keys, non-finite numbers, nesting past any limit."""
    keys = draw(st.lists(hostile_keys, min_size=1, max_size=4, unique=True))
    details: dict[str, Any] = {
        key: draw(st.integers() | st.text(max_size=5) | st.just([])) for key in keys
    }
    depth = draw(st.sampled_from([0, 3, 70, 5000]))
    nested = "[" * depth + json.dumps(details) + "]" * depth  # json.dumps would recurse
    text = '{"summary": {"markdown": "m"}, "details": {"x": ' + nested + "}}"
    if draw(st.booleans()):
        text = text.replace("[]", draw(st.sampled_from(["NaN", "Infinity", "-Infinity"])), 1)
    return text, keys


class ScriptedModel:
    def __init__(self, text: str) -> None:
        self.text = text

    def generate(self, request: LLMRequest, timeout_s: float) -> LLMResponse:
        return LLMResponse(text=self.text, finish_reason="STOP")


@FUZZ
@given(output=hostile_outputs())
def test_any_model_output(firestore, gcs, output):
    """Whatever the model answers: the step ends, and what is stored or logged never carries a
    key the model chose and stays within the message caps."""
    text, keys = output
    schema = load("examples/llm_schema.example.json")
    schema["schemaId"] = STRICT_SCHEMA_ID
    schema["jsonSchema"]["properties"]["details"] = {
        "type": "object",
        "additionalProperties": {"type": "object", "additionalProperties": {"type": "string"}},
    }
    doc = scenario.flow_run()
    doc["steps"][scenario.STEP]["inputs"]["llm"]["llmProfile"]["structuredOutput"]["schemaId"] = (
        STRICT_SCHEMA_ID
    )
    scenario.seed(firestore, gcs, doc)
    firestore.collection("llm_schemas").document(STRICT_SCHEMA_ID).set(schema)
    w, sink = worker(firestore, gcs, ScriptedModel(text))

    outcome = w.handle(to_event(CloudEvent(ATTRIBUTES, None), "demo-tda"))

    assert_catalogued(outcome)
    step = scenario.step_of(firestore)
    assert step["status"] in ("SUCCEEDED", "FAILED")
    error = step.get("error") or {}
    message = str(error.get("message", ""))
    assert len(message) <= 500 and len(message.encode("utf-8")) <= 512
    stored = json.dumps(step, ensure_ascii=False)
    for key in keys:
        if key not in ("summary.markdown", "details", "<key>"):  # schema-side names may appear
            assert key not in stored
            assert key not in sink.getvalue()
            assert json.dumps(key)[1:-1] not in sink.getvalue()

"""Fuzzing the CHART_EXPORT worker's inputs: hostile step inputs, scope, timeframes, chart
templates and Chart-IMG answers, through the whole worker in memory.

Whatever arrives, the invocation returns (no exception reaches the framework), a claimed step
never stays RUNNING, every code written is catalogued, and every finalize is the §11 patch.
"""

from __future__ import annotations

import io
import json
from typing import Any, get_args

import jsonschema
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import compose
from adapters.chart_usage import MemoryUsageStore
from adapters.memory import MemoryBlobStore, MemoryDocumentStore
from engine.cloudevent import Event
from states.chart_export.chart_api import AttemptKind, ChartAttempt
from states.chart_export.errors import STEP_CODES
from tests.chart_export.test_lifecycle import (
    EVENT,
    KEYS,
    MA,
    RUN_ID,
    STEP,
    environ,
    flow_run,
    templates,
)
from tests.contracts import load
from tests.fakes import DictTemplates, ScriptedChartApi

FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
PATCH_SCHEMA = load("chart_export/chart_export_finalize_patch.schema.json")
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)
TEMPLATE_IDS = st.sampled_from([MA, "ctpl_price_rsi14_stochrsi_v1", "ctpl_fuzz_v1", "ctpl_x_v9"])
REQUEST = st.one_of(
    st.fixed_dictionaries({"chartTemplateId": TEMPLATE_IDS}),
    st.fixed_dictionaries({"chartTemplateId": st.text(max_size=140)}),
    JSON,
)
INPUTS = st.fixed_dictionaries(
    {},
    optional={
        "requests": st.one_of(st.lists(REQUEST, max_size=12), JSON),
        "minImages": st.one_of(st.integers(-2, 12), JSON),
        "ohlcv_gcs_uri": JSON,
    },
)
ANSWERS = st.lists(
    st.one_of(
        st.builds(
            ChartAttempt,
            st.sampled_from(get_args(AttemptKind)),
            st.one_of(st.none(), st.integers(100, 599)),
            png=st.just(b"\x89PNG\r\n\x1a\n..."),
            retry_after_s=st.one_of(st.none(), st.floats(0, 5000)),
            provider_message=st.one_of(st.none(), st.text(max_size=200)),
        ),
    ),
    max_size=6,
)


def template_documents() -> st.SearchStrategy[dict[str, Any]]:
    valid = templates()[MA]
    mutated = st.builds(
        lambda key, value: {**valid, key: value},
        st.sampled_from(["id", "description", "chartImgSymbolTemplate", "request", "extra"]),
        JSON,
    )
    return st.one_of(st.just(valid), mutated, st.dictionaries(st.text(max_size=10), JSON))


def check(store: MemoryDocumentStore, log: str) -> None:
    step = (store.document("flow_runs", RUN_ID) or {})["steps"][STEP]
    assert step["status"] != "RUNNING", "a claimed step was left RUNNING"
    if step["status"] == "FAILED":
        assert step["error"]["code"] in STEP_CODES
    for write in store.writes:
        if any(k.endswith("finishedAt") for k in write["fields"]):
            jsonschema.validate(write["fields"], PATCH_SCHEMA)
    for key in KEYS.values():
        assert key not in log and key not in json.dumps(store.writes)
    assert '"worker_exception"' not in log or '"WORKER_INTERNAL_ERROR"' in json.dumps(store.writes)


def run(doc: dict[str, Any], documents: dict[str, Any], answers: list[ChartAttempt]) -> None:
    store = MemoryDocumentStore({f"flow_runs/{RUN_ID}": doc})
    sink = io.StringIO()
    runner = compose.build(
        "chart_export",
        environ(),
        stream=sink,
        store=store,
        blobs=MemoryBlobStore(),
        templates=DictTemplates(documents),
        chart_api=ScriptedChartApi({t: list(answers) for t in documents}),
        usage=MemoryUsageStore(44, 3000),
        sleep=lambda _s: None,
    )
    runner.handle(Event(EVENT.event_id, EVENT.event_type, EVENT.subject))
    check(store, sink.getvalue())


@FUZZ
@given(
    inputs=INPUTS,
    symbol=st.one_of(st.just("BTCUSDT"), st.text(max_size=40)),
    timeframe=st.one_of(st.sampled_from(["1M", "1m", "1w", "1H", "2w"]), st.text(max_size=6)),
)
def test_hostile_step_inputs_end_in_a_catalogued_outcome(inputs, symbol, timeframe):
    doc = flow_run()
    doc["scope"]["symbol"] = symbol
    doc["steps"][STEP].update(timeframe=timeframe, inputs=inputs)
    run(doc, templates(), [])


@FUZZ
@given(document=template_documents(), answers=ANSWERS, min_images=st.integers(0, 2))
def test_hostile_templates_and_answers_end_in_a_catalogued_outcome(document, answers, min_images):
    doc = flow_run(requests=(MA, "ctpl_price_rsi14_stochrsi_v1"), min_images=min_images)
    run(doc, {**templates(), MA: document}, answers)

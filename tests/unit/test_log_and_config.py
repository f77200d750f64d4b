"""The logger's safety gates (SPEC §13) and configuration validation (SPEC §14)."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from engine.config import ConfigError
from engine.log import EventLogger
from states.llm_client.catalog import PROFILE
from states.llm_client.config import LlmConfig as WorkerConfig

REQUIRED = (
    "service",
    "env",
    "component",
    "event",
    "severity",
    "message",
    "time",
    "eventId",
    "runId",
)


def emit(**fields) -> dict[str, Any]:
    sink = io.StringIO()
    EventLogger(PROFILE, env="test", stream=sink).bind(eventId="e1", runId="r1").info(
        "probe", **fields
    )
    entry: dict[str, Any] = json.loads(sink.getvalue())
    return entry


def test_every_entry_carries_the_required_fields():
    entry = emit(count=1)
    assert all(key in entry for key in REQUIRED)
    assert entry["service"] == "worker_llm_client"
    assert entry["message"] == "probe"
    assert entry["count"] == 1


@pytest.mark.parametrize(
    "payload",
    [
        {"apiKey": "AIza-looking"},
        {"nested": {"deeper": [{"userPrompt": "the prompt"}]}},
        {"request": {"systemInstruction": "x"}},
        {"Authorization": "Bearer x"},
        {"candidate_text": "raw"},
    ],
)
def test_forbidden_keys_at_any_depth_are_never_emitted(payload):
    entry = emit(**payload)
    assert entry["payloadRejected"]
    line = json.dumps(entry)
    for value in ("AIza-looking", "the prompt", "Bearer x", "raw"):
        assert value not in line


def test_values_are_bounded_and_summarized():
    entry = emit(big="x" * 5000, many=list(range(300)), blob=b"\x00\x01", obj=object())
    assert len(entry["big"]) < 4200
    assert len(entry["many"]) == 201
    assert entry["blob"] == "<bytes len=2>"
    assert entry["obj"] == "<object>"


def test_logger_never_raises():
    class Broken(io.StringIO):
        def write(self, _):
            raise OSError("disk full")

    EventLogger(PROFILE, env="t", stream=Broken()).info("probe", x=1)


BASE = {"ARTIFACTS_BUCKET": "bkt", "GEMINI_API_KEY": "secret-value-123"}


def test_defaults_match_the_spec():
    config = WorkerConfig.from_env(BASE)
    common = config.common
    assert (common.invocation_timeout_s, common.finalize_budget_s, config.gemini_timeout_s) == (
        780.0,
        120.0,
        600.0,
    )
    assert config.flow_runs_collection == "flow_runs"
    assert config.gemini.mode == "single"
    assert "secret-value-123" not in repr(config)


def test_rotation_keys_select_the_active_key():
    config = WorkerConfig.from_env(
        {
            "ARTIFACTS_BUCKET": "b",
            "GEMINI_API_KEYS_JSON": '{"k1": "v1", "k2": "v2"}',
            "GEMINI_API_KEY_ID": "k2",
        }
    )
    assert (config.gemini.mode, config.gemini.key_id, config.gemini.api_key) == (
        "rotation",
        "k2",
        "v2",
    )


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"GEMINI_API_KEY": "secret-value-123"}, "ARTIFACTS_BUCKET"),
        ({"ARTIFACTS_BUCKET": "b"}, "GEMINI_API_KEY"),
        ({**BASE, "FLOW_RUNS_COLLECTION": "a/b"}, "FLOW_RUNS_COLLECTION"),
        ({**BASE, "GEMINI_TIMEOUT_SECONDS": "soon"}, "GEMINI_TIMEOUT_SECONDS"),
        ({**BASE, "LOG_LEVEL": "LOUD"}, "LOG_LEVEL"),
        (
            {"ARTIFACTS_BUCKET": "b", "GEMINI_API_KEYS_JSON": "{secret-value-123"},
            "GEMINI_API_KEYS_JSON",
        ),
        (
            {
                "ARTIFACTS_BUCKET": "b",
                "GEMINI_API_KEYS_JSON": '{"k": "secret-value-123"}',
                "GEMINI_API_KEY_ID": "nope",
            },
            "GEMINI_API_KEY_ID",
        ),
    ],
)
def test_errors_name_the_variable_never_the_value(env, variable):
    with pytest.raises(ConfigError) as err:
        WorkerConfig.from_env(env)
    assert variable in str(err.value)
    assert "secret-value-123" not in str(err.value)


@pytest.mark.parametrize(
    ("variable", "value", "attribute", "expected"),
    [
        ("GCP_PROJECT", "p1", "common.gcp_project", "p1"),
        ("GCP_REGION", "europe-west1", "gcp_region", "europe-west1"),
        ("FIRESTORE_DATABASE", "tda", "common.firestore_database", "tda"),
        ("FLOW_RUNS_COLLECTION", "runs", "flow_runs_collection", "runs"),
        ("LLM_PROMPTS_COLLECTION", "prompts", "prompts_collection", "prompts"),
        ("LLM_SCHEMAS_COLLECTION", "schemas", "schemas_collection", "schemas"),
        ("ARTIFACTS_BUCKET", "gs://other/", "artifacts_bucket", "other"),
        ("ARTIFACTS_PREFIX", "/reports/", "artifacts_prefix", "/reports/"),
        ("GEMINI_ALLOWED_MODELS", " a , b ,", "allowed_models", ("a", "b")),
        ("GEMINI_TIMEOUT_SECONDS", "30", "gemini_timeout_s", 30.0),
        ("FINALIZE_BUDGET_SECONDS", "60", "common.finalize_budget_s", 60.0),
        ("INVOCATION_TIMEOUT_SECONDS", "540", "common.invocation_timeout_s", 540.0),
        ("LOG_LEVEL", "debug", "common.log_level", "DEBUG"),
        ("ENV", "prod", "common.env", "prod"),
        ("STALE_STEP_LEASE_SECONDS", "3600", "common.lease_s", 3600.0),
    ],
)
def test_every_variable_is_read(variable, value, attribute, expected):
    found: Any = WorkerConfig.from_env({**BASE, variable: value})
    for name in attribute.split("."):
        found = getattr(found, name)
    assert found == expected


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("ARTIFACTS_BUCKET", "gs://bucket/with/path"),
        ("LLM_PROMPTS_COLLECTION", "a/b"),
        ("LLM_SCHEMAS_COLLECTION", "a/b"),
        ("FINALIZE_BUDGET_SECONDS", "-5"),
        ("INVOCATION_TIMEOUT_SECONDS", "abc"),
        ("FINALIZE_BUDGET_SECONDS", "900"),  # not below the invocation timeout
        ("STALE_STEP_LEASE_SECONDS", "60"),  # not above the invocation timeout
        ("STALE_STEP_LEASE_SECONDS", "839"),  # below the invocation timeout + 60 s
        ("ARTIFACTS_PREFIX", "reports/../other"),
        ("ARTIFACTS_PREFIX", "rep\x07orts"),
    ],
)
def test_invalid_values_are_named_by_variable(variable, value):
    with pytest.raises(ConfigError) as err:
        WorkerConfig.from_env({**BASE, variable: value})
    assert variable in str(err.value)
    assert value not in str(err.value)


def test_the_test_clock_starts_where_asked_and_then_runs():
    import compose

    ticks = iter([100.0, 100.0, 102.5])
    runner = compose.build(
        "llm_client",
        {**BASE, "WORKER_TEST_NOW": "2025-12-15T10:26:00Z"},
        stream=io.StringIO(),
        monotonic=lambda: next(ticks),
    )
    assert runner.now().isoformat() == "2025-12-15T10:26:00+00:00"
    assert runner.now().isoformat() == "2025-12-15T10:26:02.500000+00:00"
    with pytest.raises(ConfigError):
        compose.build("llm_client", {**BASE, "WORKER_TEST_NOW": "tomorrow"}, stream=io.StringIO())

"""The logger's safety gates (SPEC §13) and configuration validation (SPEC §14)."""

from __future__ import annotations

import io
import json

import pytest

from engine.config import ConfigError, WorkerConfig
from engine.log import EventLogger

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


def emit(**fields) -> dict:
    sink = io.StringIO()
    EventLogger(env="test", stream=sink).bind(eventId="e1", runId="r1").info("probe", **fields)
    return json.loads(sink.getvalue())


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

    EventLogger(env="t", stream=Broken()).info("probe", x=1)


BASE = {"ARTIFACTS_BUCKET": "bkt", "GEMINI_API_KEY": "secret-value-123"}


def test_defaults_match_the_spec():
    config = WorkerConfig.from_env(BASE)
    assert (config.invocation_timeout_s, config.finalize_budget_s, config.gemini_timeout_s) == (
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

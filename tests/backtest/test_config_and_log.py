"""The backtest worker's configuration (BACKTEST §12) and its log profile's gates (§11)."""

from __future__ import annotations

import hashlib
import io
import json

import pytest

import compose
from engine.config import ConfigError
from engine.log import EventLogger
from states.backtest.catalog import EVENTS, PROFILE, uid_hash
from states.backtest.config import BacktestConfig


def test_defaults_are_the_spec_s():
    config = BacktestConfig.from_env({})
    assert (config.jobs_collection, config.results_collection) == (
        "backtestJobs",
        "backtestResults",
    )
    assert config.history_bucket is None and config.history_prefix == ""
    assert config.history_max_bytes == 4_194_304
    common = config.common
    assert (common.invocation_timeout_s, common.finalize_budget_s, common.lease_s) == (
        540.0,
        60.0,
        900.0,
    )
    assert common.firestore_database == "(default)"


def test_variables_are_read():
    config = BacktestConfig.from_env(
        {
            "BACKTEST_JOBS_COLLECTION": "jobs",
            "BACKTEST_RESULTS_COLLECTION": "results",
            "HISTORY_BUCKET": "gs://history/",
            "HISTORY_PREFIX": "/prices/",
            "HISTORY_MAX_BYTES": "1000",
            "INVOCATION_TIMEOUT_SECONDS": "300",
            "FINALIZE_BUDGET_SECONDS": "30",
            "JOB_LEASE_SECONDS": "360",
        }
    )
    assert (config.jobs_collection, config.results_collection) == ("jobs", "results")
    assert (config.history_bucket, config.history_prefix) == ("history", "/prices/")
    assert config.history_max_bytes == 1000
    assert (config.common.invocation_timeout_s, config.common.lease_s) == (300.0, 360.0)


@pytest.mark.parametrize(
    ("environ", "variable"),
    [
        ({"JOB_LEASE_SECONDS": "599"}, "JOB_LEASE_SECONDS"),  # < 540 + 60
        ({"FINALIZE_BUDGET_SECONDS": "540"}, "FINALIZE_BUDGET_SECONDS"),
        ({"BACKTEST_JOBS_COLLECTION": "a/b"}, "BACKTEST_JOBS_COLLECTION"),
        ({"BACKTEST_RESULTS_COLLECTION": "backtestJobs"}, "BACKTEST_RESULTS_COLLECTION"),
        ({"HISTORY_BUCKET": "gs://bucket/path"}, "HISTORY_BUCKET"),
        ({"HISTORY_PREFIX": "a/../b"}, "HISTORY_PREFIX"),
        ({"HISTORY_MAX_BYTES": "0"}, "HISTORY_MAX_BYTES"),
        ({"HISTORY_MAX_BYTES": str(2**40)}, "HISTORY_MAX_BYTES"),
        ({"HISTORY_MAX_BYTES": "lots"}, "HISTORY_MAX_BYTES"),
        ({"LOG_LEVEL": "LOUD"}, "LOG_LEVEL"),
    ],
)
def test_invalid_configuration_names_the_variable_never_the_value(environ, variable):
    with pytest.raises(ConfigError) as caught:
        BacktestConfig.from_env(environ)
    assert caught.value.variable == variable
    assert all(value not in str(caught.value) for value in environ.values() if len(value) > 3)


def test_an_invalid_configuration_is_logged_once_as_config_invalid():
    sink = io.StringIO()
    with pytest.raises(ConfigError):
        compose.build("backtest", {"JOB_LEASE_SECONDS": "10"}, stream=sink)
    (line,) = [json.loads(raw) for raw in sink.getvalue().splitlines()]
    assert (line["event"], line["variable"], line["service"]) == (
        "config_invalid",
        "JOB_LEASE_SECONDS",
        "worker_backtest",
    )


def test_uid_hash_is_the_first_twelve_hex_of_sha256():
    assert uid_hash("user_alice") == hashlib.sha256(b"user_alice").hexdigest()[:12]
    assert len(uid_hash("x")) == 12 and uid_hash("x") != uid_hash("y")


@pytest.mark.parametrize(
    "key",
    [
        "userId",
        "user_id",
        "configUsed",
        "pricePath",
        "equityCurve",
        "backtestResult",
        "notes",
        "errorStack",
        "apiKey",
    ],
)
def test_the_safety_gate_refuses_keys_that_would_carry_user_data(key):
    sink = io.StringIO()
    EventLogger(PROFILE, env="test", stream=sink).info("job_failed", errorCode="X", **{key: "v"})
    entry = json.loads(sink.getvalue())
    assert entry["payloadRejected"] == [key] and entry["severity"] == "ERROR"
    assert "v" not in {str(value) for value in entry.values()}


def test_nested_forbidden_keys_are_refused_too():
    sink = io.StringIO()
    log = EventLogger(PROFILE, env="test", stream=sink)
    log.info("job_failed", errorCode="X", detail={"job": {"pricePath": [1.0]}})
    assert json.loads(sink.getvalue())["payloadRejected"] == ["pricePath"]


def test_the_catalog_has_every_event_the_spec_lists():
    spec = {
        "job_validation_failed",
        "job_claimed",
        "history_read_started",
        "history_read_finished",
        "engine_started",
        "engine_finished",
        "result_write_started",
        "result_write_finished",
        "job_recovered",
        "job_lease_expired",
        "job_completed",
        "job_failed",
        "sweep_finished",
    }
    assert spec <= set(EVENTS)
    engine = {"cloud_event_received", "cloud_event_ignored", "cloud_event_noop"}
    assert engine | {"cloud_event_finished"} <= set(PROFILE.catalog)
    assert PROFILE.service == "worker_backtest"
    assert PROFILE.context[:2] == ("eventId", "jobId")

"""Stale-step recovery against the Firestore emulator and fake-gcs (issue: proof under faults)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import requests

from tests import scenario
from tests.contracts import CONTRACTS
from tests.fakes import ExplodingLLM, worker

LEASE = 900.0


def running_since(db, gcs, seconds_ago: float, status: str = "RUNNING") -> str:
    doc = scenario.flow_run()
    started = (
        (datetime.now(UTC) - timedelta(seconds=seconds_ago)).isoformat().replace("+00:00", "Z")
    )
    doc["steps"][scenario.STEP]["status"] = status
    doc["steps"][scenario.STEP]["outputs"] = {"execution": {"timing": {"startedAt": started}}}
    scenario.seed(db, gcs, doc)
    return started


def test_a_stale_step_without_artifact_is_failed_with_a_catalogued_code(firestore, gcs):
    started = running_since(firestore, gcs, LEASE + 60)
    w, _ = worker(firestore, gcs, ExplodingLLM())
    summary = w.scan(LEASE)
    assert summary == {
        "runsScanned": 1,
        "stale": 1,
        "recovered": 0,
        "expired": 1,
        "probeFailed": 0,
    }
    step = scenario.step_of(firestore)
    assert step["status"] == "FAILED"
    assert step["error"]["code"] == "STEP_LEASE_EXPIRED"
    assert step["outputs"]["execution"]["timing"]["startedAt"] == started


def test_a_stale_step_with_its_artifact_is_finalized_from_it(firestore, gcs):
    running_since(firestore, gcs, LEASE + 60)
    artifact = (CONTRACTS / "examples/llm_report_file.example.json").read_bytes()
    scenario.upload(gcs, scenario.ARTIFACT_URI, artifact)
    w, _ = worker(firestore, gcs, ExplodingLLM())
    assert w.scan(LEASE)["recovered"] == 1
    step = scenario.step_of(firestore)
    assert (step["status"], step["outputs"]["gcs_uri"]) == ("SUCCEEDED", scenario.ARTIFACT_URI)
    assert step["outputs"]["execution"]["reused"] is True
    assert scenario.objects(gcs)[scenario.ARTIFACT_URI] == artifact


def test_a_step_within_its_lease_is_left_alone(firestore, gcs):
    running_since(firestore, gcs, 30)
    before = firestore.collection("flow_runs").document(scenario.RUN_ID).get().update_time
    w, _ = worker(firestore, gcs, ExplodingLLM())
    assert w.scan(LEASE) == {
        "runsScanned": 1,
        "stale": 0,
        "recovered": 0,
        "expired": 0,
        "probeFailed": 0,
    }
    after = firestore.collection("flow_runs").document(scenario.RUN_ID).get().update_time
    assert after == before


def test_a_step_reclaimed_after_the_scan_is_not_failed(firestore, gcs, monkeypatch):
    """Between the scan and the write, the orchestrator reset the step and a worker claimed it
    again: the old claim's identity (startedAt) no longer matches, so nothing is written."""
    running_since(firestore, gcs, LEASE + 60)
    w, _ = worker(firestore, gcs, ExplodingLLM())
    store = w.ports.store
    original = store.query

    def scan_then_reclaim(collection, field, value, limit):
        runs = original(collection, field, value, limit)
        firestore.collection("flow_runs").document(scenario.RUN_ID).update(
            {f"steps.{scenario.STEP}.outputs.execution.timing.startedAt": "2099-01-01T00:00:00Z"}
        )
        return runs

    monkeypatch.setattr(store, "query", scan_then_reclaim)
    w.scan(LEASE)
    step = scenario.step_of(firestore)
    assert step["status"] == "RUNNING"
    assert "error" not in step


def test_terminal_and_non_running_runs_are_not_scanned(firestore, gcs):
    running_since(firestore, gcs, LEASE + 60)
    firestore.collection("flow_runs").document(scenario.RUN_ID).update({"status": "CANCELLED"})
    w, _ = worker(firestore, gcs, ExplodingLLM())
    assert w.scan(LEASE)["runsScanned"] == 0
    assert scenario.step_of(firestore)["status"] == "RUNNING"


def test_the_scheduler_function_runs_the_scan(firestore, gcs, function_server_factory):
    running_since(firestore, gcs, 2000)
    server = function_server_factory(
        {"ARTIFACTS_BUCKET": scenario.BUCKET}, target="recover_stale_steps", signature_type="http"
    )
    response = requests.post(server.url, timeout=60)
    assert response.status_code == 200
    assert json.loads(response.text)["expired"] == 1
    assert scenario.step_of(firestore)["error"]["code"] == "STEP_LEASE_EXPIRED"


def test_the_cli_subcommand_runs_the_scan(firestore, gcs, service_env):
    import os
    import subprocess
    import sys

    running_since(firestore, gcs, 2000)
    env = {**os.environ, **service_env, "ARTIFACTS_BUCKET": scenario.BUCKET}
    result = subprocess.run(
        [sys.executable, "-m", "tools.llm_cli", "recover-stale", "--lease-seconds", "1000"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=scenario.__file__.rsplit("/tests/", 1)[0],
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1])["expired"] == 1

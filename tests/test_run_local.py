"""`worker-llm-client run-local` / `record`: one step with no cloud services."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from devstack import REPO_ROOT
from devstack.example import DEFAULT_EXAMPLE
from devstack.gemini_stub import GeminiStub, ok
from tests import scenario

STRIPPED = (
    "GEMINI_API_KEY",
    "GEMINI_API_KEYS_JSON",
    "GEMINI_API_KEY_ID",
    "FIRESTORE_EMULATOR_HOST",
    "STORAGE_EMULATOR_HOST",
    "GOOGLE_GEMINI_BASE_URL",
)


def cli(*args: str, env: dict[str, str] | None = None, cwd: Path = REPO_ROOT):
    base = {k: v for k, v in os.environ.items() if k not in STRIPPED}
    return subprocess.run(
        [sys.executable, "-m", "tools.llm_cli", *args],
        cwd=cwd,
        env={**base, "PYTHONPATH": str(REPO_ROOT), **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_shipped_example_succeeds_with_no_key_and_no_services(tmp_path):
    result = cli("run-local", str(DEFAULT_EXAMPLE / "flow_run.json"), "--out", str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "replaying recorded responses" in result.stdout
    assert f"step {scenario.STEP}: SUCCEEDED" in result.stdout
    artifact = tmp_path / "gcs" / scenario.ARTIFACT_URI[5:]
    report = json.loads(artifact.read_text())
    assert report["metadata"]["runId"] == scenario.RUN_ID
    assert report["output"]["summary"]["markdown"]
    assert '"steps.llm_report_1M_month_summary_v1.status": "SUCCEEDED"' in result.stdout


def test_a_step_that_is_not_ready_is_a_no_op(tmp_path):
    doc = json.loads((DEFAULT_EXAMPLE / "flow_run.json").read_text())
    doc["steps"][scenario.STEP]["status"] = "SUCCEEDED"
    path = tmp_path / "flow_run.json"
    path.write_text(json.dumps(doc))
    result = cli("run-local", str(path), "--root", str(DEFAULT_EXAMPLE), "--out", str(tmp_path))
    assert result.returncode == 3
    assert "nothing executed: no_ready_step" in result.stdout


def test_unreadable_flow_run_is_a_usage_error(tmp_path):
    (tmp_path / "bad.json").write_text("{")
    assert cli("run-local", str(tmp_path / "bad.json")).returncode == 2


def test_record_then_replay_the_same_request(tmp_path):
    root = tmp_path / "example"
    shutil.copytree(DEFAULT_EXAMPLE, root)
    shutil.rmtree(root / "cassettes")
    doc = json.loads((root / "flow_run.json").read_text())
    with GeminiStub() as stub:
        stub.script(ok(scenario.report_text()))
        recorded = cli(
            "record",
            str(root / "flow_run.json"),
            "--out",
            str(tmp_path / "a"),
            env={"GEMINI_API_KEY": "k-not-secret", "GOOGLE_GEMINI_BASE_URL": stub.base_url},
        )
        assert recorded.returncode == 0, recorded.stdout + recorded.stderr
        assert len(stub.requests) == 1
    assert len(list((root / "cassettes").glob("*.json"))) == 1
    replayed = cli("run-local", str(root / "flow_run.json"), "--out", str(tmp_path / "b"))
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    first = json.loads((tmp_path / "a/gcs" / scenario.ARTIFACT_URI[5:]).read_text())
    second = json.loads((tmp_path / "b/gcs" / scenario.ARTIFACT_URI[5:]).read_text())
    assert first["output"] == second["output"] == scenario.REPORT_OUTPUT
    assert doc["runId"] == scenario.RUN_ID


def test_record_refuses_to_run_without_a_key(tmp_path):
    result = cli("record", str(DEFAULT_EXAMPLE / "flow_run.json"), "--out", str(tmp_path))
    assert result.returncode == 2
    assert "GEMINI_API_KEY" in result.stderr

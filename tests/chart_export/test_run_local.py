"""`worker-chart-export run-local` / `record` (CHART_EXPORT §18): one step, no cloud service.

Run as the command line runs, in a subprocess, with no key and no emulator in the environment;
the real and record modes talk to the session's Chart-IMG stub.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema

from devstack import REPO_ROOT
from devstack.chart_img_stub import ChartImgStub
from tests.chart_export.helpers import KEY_1, keys
from tests.contracts import load

EXAMPLE = REPO_ROOT / "examples" / "chart_export" / "flow_run.json"
STEP = "charts:1M:price_pair_v1"
RUN_ID = "20251215-102530_BTCUSDT_k3f7a"
MANIFEST = Path("gcs") / "artifacts-bucket" / "charts" / RUN_ID / STEP / "manifest.json"
STRIPPED = (
    "CHART_IMG_ACCOUNTS_JSON",
    "CHARTS_API_MODE",
    "FIRESTORE_EMULATOR_HOST",
    "STORAGE_EMULATOR_HOST",
    "ARTIFACTS_BUCKET",
    "ENV",
)
ACCOUNTS = [{"id": "acc-1", "apiKey": KEY_1, "dailyLimit": 44}]


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in STRIPPED}
    return subprocess.run(
        [sys.executable, "-m", "tools.chart_cli", *args],
        cwd=REPO_ROOT,
        env={**base, "PYTHONPATH": str(REPO_ROOT), **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def summary(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def flow_run_file(tmp_path: Path, change: Any = None) -> Path:
    doc = json.loads(EXAMPLE.read_text())
    if change is not None:
        change(doc)
    path = tmp_path / "flow_run.json"
    path.write_text(json.dumps(doc))
    return path


def test_the_shipped_example_succeeds_with_no_key_and_no_service(tmp_path):
    result = cli("run-local", str(EXAMPLE), "--out", str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"step {STEP}: SUCCEEDED" in result.stdout
    assert f'"steps.{STEP}.status": "RUNNING"' in result.stdout  # the claim patch
    manifest = json.loads((tmp_path / MANIFEST).read_text())
    jsonschema.validate(manifest, load("chart_export/charts_outputs_manifest.schema.json"))
    assert len(manifest["items"]) == 2


def test_a_rerun_adopts_the_manifest_the_first_run_left(tmp_path):
    first = cli("run-local", str(EXAMPLE), "--out", str(tmp_path), "--output-summary", "json")
    before = (tmp_path / MANIFEST).read_bytes()
    second = cli("run-local", str(EXAMPLE), "--out", str(tmp_path), "--output-summary", "json")
    assert (first.returncode, second.returncode) == (0, 0)
    execution = summary(second)["step"]["outputs"]["execution"]
    assert execution["reused"] is True and execution["chartImg"]["attemptsTotal"] == 0
    assert (tmp_path / MANIFEST).read_bytes() == before


def test_output_summary_none_prints_nothing(tmp_path):
    result = cli("run-local", str(EXAMPLE), "--out", str(tmp_path), "--output-summary", "none")
    assert (result.returncode, result.stdout) == (0, "")


def test_exit_codes(tmp_path):
    def done(doc: dict[str, Any]) -> None:
        doc["steps"][STEP]["status"] = "SUCCEEDED"

    def broken(doc: dict[str, Any]) -> None:
        doc["status"] = "WHATEVER"

    def bad_timeframe(doc: dict[str, Any]) -> None:
        doc["steps"][STEP]["timeframe"] = "2w"

    out = str(tmp_path / "out")
    assert cli("run-local", str(flow_run_file(tmp_path, done)), "--out", out).returncode == 3
    assert cli("run-local", str(flow_run_file(tmp_path, broken)), "--out", out).returncode == 4
    failed = cli("run-local", str(flow_run_file(tmp_path, bad_timeframe)), "--out", out)
    assert failed.returncode == 1 and "INVALID_STEP_INPUTS" in failed.stdout
    assert cli("run-local", str(tmp_path / "missing.json")).returncode == 2
    assert cli("record", str(EXAMPLE), "--out", out).returncode == 2  # no accounts
    refused = cli(
        "record",
        str(EXAMPLE),
        "--out",
        out,
        env={"ENV": "production", "CHART_IMG_ACCOUNTS_JSON": json.dumps(ACCOUNTS)},
    )
    assert refused.returncode == 2 and "CHARTS_API_MODE" in refused.stderr
    assert KEY_1 not in refused.stdout + refused.stderr


def test_templates_dir_and_step_id(tmp_path):
    template = load("chart_export/chart-templates/ctpl_price_ma1226_vol_v1.json")
    template.update(id="ctpl_local_only_v1", description="a local template")
    folder = tmp_path / "templates"
    folder.mkdir()
    (folder / "ctpl_local_only_v1.json").write_text(json.dumps(template))

    def local(doc: dict[str, Any]) -> None:
        step = doc["steps"][STEP]
        step["inputs"] = {"minImages": 0, "requests": [{"chartTemplateId": "ctpl_local_only_v1"}]}

    path = flow_run_file(tmp_path, local)
    result = cli(
        "run-local",
        str(path),
        "--templates-dir",
        str(folder),
        "--out",
        str(tmp_path / "o"),
        "--step-id",
        STEP,
        "--output-summary",
        "json",
    )
    assert result.returncode == 0, result.stderr
    requests = summary(result)["step"]["outputs"]["execution"]["chartImg"]["requests"]
    # known template, but no fixture for it: a partial failure with minImages 0
    assert requests[0]["errorCode"] == "CHART_API_MOCK_MISSING"
    other = cli("run-local", str(path), "--step-id", "charts:1M:other", "--out", str(tmp_path))
    assert other.returncode == 3


def test_real_mode_against_the_stub_keeps_usage_under_out(tmp_path, stub: ChartImgStub):
    stub.configure("BASIC", keys(), [])
    accounts = tmp_path / "accounts.json"
    accounts.write_text(json.dumps(ACCOUNTS))
    args = [
        "run-local",
        str(EXAMPLE),
        "--charts-api-mode",
        "real",
        "--accounts-file",
        str(accounts),
        "--out",
        str(tmp_path / "out"),
    ]
    result = cli(*args, env={"CHART_IMG_BASE_URL": stub.base_url, "ENV": "test"})
    assert result.returncode == 0, result.stderr
    usage = json.loads((tmp_path / "out" / "chart_img_accounts_usage.json").read_text())
    assert usage["acc-1"]["usageToday"] == 2 == stub.state()["total"]
    assert KEY_1 not in result.stdout + result.stderr
    assert all(a["overLimit"] == 0 for a in stub.state()["accounts"].values())


def test_record_saves_fixtures_without_keys_then_replays_them(tmp_path, stub: ChartImgStub):
    stub.configure("BASIC", keys(), [])
    env = {
        "CHART_IMG_BASE_URL": stub.base_url,
        "ENV": "test",
        "CHART_IMG_ACCOUNTS_JSON": json.dumps(ACCOUNTS),
    }
    first = cli("record", str(EXAMPLE), "--out", str(tmp_path / "a"), env=env)
    assert first.returncode == 0, first.stderr
    fixtures = sorted((tmp_path / "a" / "fixtures").iterdir())
    assert [p.name for p in fixtures] == [
        "BINANCE_BTCUSDT__1mon__ctpl_price_ma1226_vol_v1.png",
        "BINANCE_BTCUSDT__1mon__ctpl_price_rsi14_stochrsi_v1.png",
    ]
    assert all(KEY_1.encode() not in p.read_bytes() for p in fixtures)
    calls = stub.state()["total"]
    again = cli(
        "record",
        str(EXAMPLE),
        "--out",
        str(tmp_path / "b"),
        "--fixtures-dir",
        str(tmp_path / "a" / "fixtures"),
        env=env,
    )
    assert again.returncode == 0 and stub.state()["total"] == calls  # replayed, no call

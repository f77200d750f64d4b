"""`worker-backtest`: run-local on the embedded default, simulate, and their exit codes."""

from __future__ import annotations

import hashlib
import json
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from devstack import REPO_ROOT
from engine.exits import ExitCode
from tests.backtest.vectors import VECTOR_DIR
from tools.backtest_cli import main
from wheelsim import result_sha256

EXAMPLES = REPO_ROOT / "examples" / "backtest"


def run_local(tmp_path: Path, job: Path, *extra: str) -> int:
    return main(["run-local", str(job), "--out", str(tmp_path / "out"), *extra])


def stored(tmp_path: Path, collection: str, job_id: str) -> dict[str, Any]:
    path = tmp_path / "out" / collection / f"{job_id}.json"
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def test_the_console_script_is_declared():
    scripts = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["worker-backtest"] == "tools.backtest_cli:main"


def test_the_shipped_example_completes_and_writes_the_job_and_its_result(tmp_path, capsys):
    assert run_local(tmp_path, EXAMPLES / "job.json") == ExitCode.SUCCEEDED
    job = stored(tmp_path, "backtestJobs", "example-wheel-demo")
    result = stored(tmp_path, "backtestResults", "example-wheel-demo")
    assert job["status"] == "completed" and job["startedAt"].endswith("Z")
    assert result["resultSha256"] == result_sha256(result["backtestResult"])
    assert result["backtestResult"]["cyclesCompleted"] >= 1
    text = capsys.readouterr().out
    for needle in ("completed", "total return", "max drawdown", "assignment rate", "downtrend"):
        assert needle in text


def test_the_json_summary_carries_the_figures_per_regime(tmp_path, capsys):
    code = run_local(tmp_path, EXAMPLES / "job.json", "--output-summary", "json")
    assert code == ExitCode.SUCCEEDED
    summary = json.loads(capsys.readouterr().out)
    result = stored(tmp_path, "backtestResults", "example-wheel-demo")["backtestResult"]
    assert summary["totalReturn"] == result["totalReturn"]
    assert sum(r["cycles"] for r in summary["regimes"].values()) <= summary["cyclesCompleted"]
    assert summary["regimes"]["uptrend"]["avgCycleReturn"] == result["uptrendAvgCycleReturn"]


def test_a_history_job_reads_the_folder_beside_it(tmp_path, capsys):
    assert run_local(tmp_path, EXAMPLES / "history_job.json") == ExitCode.SUCCEEDED
    result = stored(tmp_path, "backtestResults", "example-wheel-history")["backtestResult"]
    assert result["configUsed"]["dataSource"] == "history"
    assert result["priceData"]["firstDate"] == "2023-03-01"


def test_a_history_job_without_history_fails_after_its_claim(tmp_path, capsys):
    job = tmp_path / "job.json"
    job.write_text((EXAMPLES / "history_job.json").read_text())
    assert run_local(tmp_path, job) == ExitCode.FAILED
    assert stored(tmp_path, "backtestJobs", "example-wheel-history")["errorCode"] == (
        "HISTORY_NOT_FOUND"
    )


@pytest.mark.parametrize(
    ("vector", "code"),
    [
        ("bt08_history_source", ExitCode.SUCCEEDED),  # the vector brings its own CSV
        ("bt09_history_not_found", ExitCode.FAILED),
        ("e04_nan_price", ExitCode.INVALID),
        ("e07_missing_user_id", ExitCode.INVALID),
    ],
)
def test_contract_vectors_run_with_their_exit_codes(tmp_path, capsys, vector, code):
    assert run_local(tmp_path, VECTOR_DIR / f"{vector}.json", "--output-summary", "none") == code
    assert capsys.readouterr().out == ""


def test_non_finite_doubles_are_written_back_in_the_contracts_notation(tmp_path, capsys):
    run_local(tmp_path, VECTOR_DIR / "e04_nan_price.json")
    job = stored(tmp_path, "backtestJobs", "e04-nan-price")
    assert job["configUsed"]["pricePath"][2] == {"$double": "NaN"}


def test_a_job_with_nothing_to_do_is_exit_3(tmp_path, capsys):
    job = json.loads((EXAMPLES / "job.json").read_text())
    path = tmp_path / "done.json"
    path.write_text(json.dumps({**job, "status": "completed"}))
    assert run_local(tmp_path, path) == ExitCode.NOTHING
    assert "already_final" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("content", "code"),
    [
        (None, ExitCode.USAGE),  # no such file
        ("{not json", ExitCode.INVALID),
        ("[1, 2]", ExitCode.INVALID),
        ('{"jobId": "bad id", "status": "queued"}', ExitCode.INVALID),
    ],
)
def test_unusable_inputs(tmp_path, capsys, content, code):
    path = tmp_path / "job.json"
    if content is not None:
        path.write_text(content)
    assert run_local(tmp_path, path) == code
    assert capsys.readouterr().err.strip()


def test_the_plot_is_drawn(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    png = tmp_path / "equity.png"
    assert run_local(tmp_path, EXAMPLES / "job.json", "--plot", str(png)) == ExitCode.SUCCEEDED
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_without_matplotlib_the_plot_is_refused_before_the_job_runs(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # an import of it now fails
    png = tmp_path / "equity.png"
    assert run_local(tmp_path, EXAMPLES / "job.json", "--plot", str(png)) == ExitCode.USAGE
    assert "uv sync --extra plot" in capsys.readouterr().err
    assert not png.exists() and not (tmp_path / "out").exists()


def test_simulate_prints_the_canonical_result_and_its_hash(capsys):
    assert main(["simulate", str(EXAMPLES / "config.json")]) == ExitCode.SUCCEEDED
    canonical, digest = capsys.readouterr().out.splitlines()
    assert digest == f"sha256 {hashlib.sha256(canonical.encode()).hexdigest()}"
    result = json.loads(canonical)
    assert result["configUsed"]["dataSource"] == "inline"


def test_simulate_and_run_local_agree_on_the_hash(tmp_path, capsys):
    main(["simulate", str(EXAMPLES / "job.json")])  # a job holding a configUsed works too
    digest = capsys.readouterr().out.splitlines()[-1].split()[1]
    run_local(tmp_path, EXAMPLES / "job.json")
    assert stored(tmp_path, "backtestResults", "example-wheel-demo")["resultSha256"] == digest


@pytest.mark.parametrize(
    ("config", "code"),
    [
        ({"startingCapital": -1}, ExitCode.INVALID),
        (
            {
                **json.loads((EXAMPLES / "history_job.json").read_text())["configUsed"],
            },
            ExitCode.USAGE,
        ),
    ],
    ids=["invalid", "history"],
)
def test_simulate_refuses_what_it_cannot_run(tmp_path, capsys, config, code):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    assert main(["simulate", str(path)]) == code
    assert capsys.readouterr().err.strip()


def test_sweep_stale_without_a_valid_configuration_is_a_usage_error(monkeypatch, capsys):
    monkeypatch.setenv("JOB_LEASE_SECONDS", "1")
    assert main(["sweep-stale"]) == ExitCode.USAGE


def test_the_history_folder_never_serves_a_name_outside_it(tmp_path):
    from adapters.memory import FolderBucket
    from engine.ports import BlobNotFound, BlobTooLarge

    (tmp_path / "daily").mkdir()
    (tmp_path / "daily" / "A.csv").write_bytes(b"date,close\n")
    (tmp_path.parent / "secret.csv").write_bytes(b"nope")
    bucket = FolderBucket(tmp_path)
    assert bucket.read("gs://any/daily/A.csv", 100) == b"date,close\n"
    with pytest.raises(BlobTooLarge):
        bucket.read("gs://any/daily/A.csv", 5)
    for uri in ("gs://any/../secret.csv", "gs://any/daily/../../secret.csv", "file:///etc/x"):
        with pytest.raises(BlobNotFound):
            bucket.read(uri, 100)
    assert not bucket.exists("gs://any/daily/B.csv")

"""`worker-backtest run-local` and `simulate`: a backtest on a laptop, no cloud service.

`run-local` runs one job through the deployed lifecycle (the same composition, table and
states) on the embedded default: jobs and results in memory (`MemoryDocumentStore`), history
CSVs from a folder. It writes the final job and its result document under `--out` and prints a
summary. `simulate` runs the Wheel engine alone on a `configUsed` and prints the canonical
`backtestResult` and its SHA-256, as the worker would store them.

Exit codes (COMMON.md §9): 0 the job completed; 1 it failed after its claim (history, engine,
result, time budget: the job was sound but could not be run); 2 usage or configuration error;
3 nothing to execute (the job is already final, running, or of an unknown status); 4 invalid
input document: the file is not a job, or the job failed validation (§4) before any claim.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

DEFAULT_OUTPUT = Path(".run-local")
LOCAL_BUCKET = "local-history"
CREATED = "google.cloud.firestore.document.v1.created"
REGIMES = ("uptrend", "downtrend", "sideways")
SUMMARY_FORMATS = ("text", "json", "none")


class Unusable(Exception):
    """The input cannot be run: `code` is the exit code, the message says why."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def add_run_local_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "job",
        type=Path,
        help="a backtestJobs document as JSON (or a contract test vector, which brings its own "
        'history); {"$double": "NaN"} stands for a double JSON cannot carry',
    )
    parser.add_argument(
        "--history-dir",
        type=Path,
        help="the history bucket's root: <dir>/<HISTORY_PREFIX>/daily/<SYMBOL>.csv "
        "(default: history/ beside the job file, when it exists)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUTPUT,
        help=f"where the final job and its result are written (default: {DEFAULT_OUTPUT})",
    )
    parser.add_argument(
        "--plot",
        type=Path,
        metavar="PNG",
        help="draw the equity curve with regime bands and cycle boundaries (needs the `plot` "
        "extra: uv sync --extra plot)",
    )
    parser.add_argument(
        "--output-summary",
        choices=SUMMARY_FORMATS,
        default="text",
        help="how the summary is printed (default: text)",
    )
    parser.add_argument("--verbose", action="store_true", help="print the worker's event log")


# --- reading and writing documents ------------------------------------------------------------


def _special_double(obj: dict[str, Any]) -> Any:
    if obj.keys() == {"$double"} and obj["$double"] in ("NaN", "Infinity", "-Infinity"):
        return float(obj["$double"])
    return obj


def read_document(path: Path) -> dict[str, Any]:
    """A JSON object from `path`; `{"$double": ...}` decoded (contracts/backtest/README.md)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise Unusable(2, f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        data = json.loads(text, object_hook=_special_double)
    except ValueError as exc:
        raise Unusable(4, f"{path} is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise Unusable(4, f"{path} does not hold a JSON object")
    return data


def plain(value: Any) -> Any:
    """A stored value as JSON: timestamps as RFC 3339, non-finite doubles as `$double`."""
    from engine.clock import rfc3339

    if isinstance(value, datetime):
        return rfc3339(value)
    if isinstance(value, float) and not math.isfinite(value):
        return {
            "$double": "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
        }
    if isinstance(value, dict):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    return value


def write_document(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(plain(data), indent=2, ensure_ascii=False, allow_nan=False)
    path.write_text(text + "\n", encoding="utf-8")


# --- run-local --------------------------------------------------------------------------------


@dataclass(frozen=True)
class LocalJob:
    job_id: str
    job: dict[str, Any]
    history: dict[str, bytes]  # object name → bytes, when the input brings its own (a vector)


def local_job(data: dict[str, Any], path: Path) -> LocalJob:
    """The job of a job file, or of a contract vector file (with its history object)."""
    from states.backtest.job import JOB_ID_RE

    history: dict[str, bytes] = {}
    if "formatVersion" in data and isinstance(data.get("job"), dict):
        job_id, job = data.get("jobId"), data["job"]
        spec = data.get("history")
        if isinstance(spec, dict):
            history[str(spec["objectName"])] = str(spec["content"]).encode("utf-8")
    else:
        job_id, job = data.get("jobId", path.stem), data
    if not isinstance(job_id, str) or not JOB_ID_RE.match(job_id):
        raise Unusable(4, "the job needs a jobId matching ^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")
    return LocalJob(job_id, job, history)


def history_store(args: argparse.Namespace, local: LocalJob, bucket: str, prefix: str) -> Any:
    from adapters.memory import FolderBucket, MemoryBlobStore

    if local.history:
        base = prefix.strip().strip("/")
        return MemoryBlobStore(
            {
                f"gs://{bucket}/{base + '/' if base else ''}{name}": data
                for name, data in local.history.items()
            }
        )
    folder: Path | None = args.history_dir
    if folder is None and (args.job.parent / "history").is_dir():
        folder = args.job.parent / "history"
    if folder is None:  # nothing to read from: a history job fails HISTORY_NOT_FOUND
        return MemoryBlobStore()
    if not folder.is_dir():
        raise Unusable(2, f"--history-dir {folder} is not a folder")
    return FolderBucket(folder)


def run_local(args: argparse.Namespace) -> int:
    from engine.exits import ExitCode

    if args.plot is not None:
        from tools.backtest_plot import missing

        problem = missing()
        if problem is not None:  # before the job runs: nothing is spent on a run to throw away
            print(problem, file=sys.stderr)
            return ExitCode.USAGE
    try:
        data = read_document(args.job)
        local = local_job(data, args.job)
        return execute(args, local)
    except Unusable as exc:
        print(str(exc), file=sys.stderr)
        return exc.code


def execute(args: argparse.Namespace, local: LocalJob) -> int:
    import compose
    from adapters.memory import MemoryDocumentStore
    from engine.cloudevent import Event
    from engine.config import ConfigError
    from engine.exits import ExitCode
    from states.backtest.config import BacktestConfig

    environ = {"HISTORY_BUCKET": LOCAL_BUCKET, **os.environ}
    try:
        config = BacktestConfig.from_env(environ)
    except ConfigError as exc:
        raise Unusable(ExitCode.USAGE, f"configuration error: {exc}") from None
    store = MemoryDocumentStore({f"{config.jobs_collection}/{local.job_id}": local.job})
    history = history_store(
        args, local, config.history_bucket or LOCAL_BUCKET, config.history_prefix
    )
    runner = compose.build(
        "backtest",
        environ,
        config=config,
        stream=sys.stderr,
        level="INFO" if args.verbose else "ERROR",
        store=store,
        history=history,
    )
    event = Event("run-local", CREATED, f"documents/{config.jobs_collection}/{local.job_id}")
    outcome = runner.handle(event)
    job = store.document(config.jobs_collection, local.job_id) or {}
    result = store.document(config.results_collection, local.job_id)
    files = {"job": args.out / config.jobs_collection / f"{local.job_id}.json"}
    write_document(files["job"], job)
    if result is not None:
        files["result"] = args.out / config.results_collection / f"{local.job_id}.json"
        write_document(files["result"], result)
    code = exit_code(outcome.status, job)
    noop = str(outcome.reason) if outcome.status == "noop" else None
    summary = summarize(local.job_id, job, result, noop, files)
    if args.output_summary == "json":
        print(json.dumps(summary, indent=2, ensure_ascii=False))
    elif args.output_summary == "text":
        print(render(summary))
    if args.plot is not None:
        if result is None:
            print("no result to plot: the job did not complete", file=sys.stderr)
        else:
            from tools.backtest_plot import draw

            draw(result["backtestResult"], args.plot, f"{local.job_id}")
            if args.output_summary == "text":
                print(f"plot: {args.plot}")
    return code


def exit_code(status: str, job: dict[str, Any]) -> int:
    """Completed 0; failed before any claim (validation) 4, after it 1; a no-op 3."""
    from engine.exits import ExitCode

    if status == "noop":
        return ExitCode.NOTHING
    if job.get("status") == "completed":
        return ExitCode.SUCCEEDED
    if job.get("status") == "failed" and job.get("startedAt") is None:
        return ExitCode.INVALID
    return ExitCode.FAILED


def summarize(
    job_id: str,
    job: dict[str, Any],
    stored: dict[str, Any] | None,
    noop: str | None,
    files: dict[str, Path],
) -> dict[str, Any]:
    summary: dict[str, Any] = {
        "jobId": job_id,
        "status": job.get("status"),
        "errorCode": job.get("errorCode"),
        "errorMessage": job.get("errorMessage"),
        "noop": noop,
        "files": {name: str(path) for name, path in files.items()},
    }
    if stored is None:
        return summary
    result = stored["backtestResult"]
    cycles = result["cycles"]
    summary.update(
        resultSha256=stored.get("resultSha256"),
        points=result["priceData"]["points"],
        firstDate=result["priceData"]["firstDate"],
        lastDate=result["priceData"]["lastDate"],
        totalReturn=result["totalReturn"],
        maxDrawdown=result["maxDrawdown"],
        cyclesCompleted=result["cyclesCompleted"],
        assignmentRate=result["assignmentRate"],
        avgCycleReturn=result["avgCycleReturn"],
        avgCycleDurationDays=result["avgCycleDurationDays"],
        regimes={
            regime: {
                "cycles": sum(cycle["dominantRegime"] == regime for cycle in cycles),
                "avgCycleReturn": result[f"{regime}AvgCycleReturn"],
                "assignmentRate": result[f"{regime}AssignmentRate"],
            }
            for regime in REGIMES
        },
        finalState=result["finalPosition"]["state"],
    )
    return summary


def percent(value: float | None, signed: bool = True) -> str:
    if value is None:
        return "-"
    return f"{value * 100:+.2f} %" if signed else f"{value * 100:.2f} %"


def render(summary: dict[str, Any]) -> str:
    lines = [f"job {summary['jobId']}: {summary['status']}"]
    if summary.get("noop"):
        lines.append(f"nothing executed: {summary['noop']}")
    if summary.get("errorCode"):
        lines.append(f"error {summary['errorCode']}: {summary['errorMessage']}")
    if "totalReturn" in summary:
        lines += [
            f"{summary['points']} points, {summary['firstDate']} .. {summary['lastDate']}",
            f"  {'total return':<22}{percent(summary['totalReturn']):>12}",
            f"  {'max drawdown':<22}{percent(summary['maxDrawdown']):>12}",
            f"  {'cycles completed':<22}{summary['cyclesCompleted']:>12}",
            f"  {'assignment rate':<22}{percent(summary['assignmentRate'], False):>12}",
            f"  {'avg cycle return':<22}{percent(summary['avgCycleReturn']):>12}",
            f"  {'final state':<22}{summary['finalState']:>12}",
            "",
            f"  {'regime':<12}{'cycles':>8}{'avg return':>14}{'assignment':>14}",
        ]
        for regime, figures in summary["regimes"].items():
            lines.append(
                f"  {regime:<12}{figures['cycles']:>8}"
                f"{percent(figures['avgCycleReturn']):>14}"
                f"{percent(figures['assignmentRate'], False):>14}"
            )
        lines.append(f"resultSha256 {summary['resultSha256']}")
    for name, path in summary["files"].items():
        lines.append(f"{name}: {path}")
    return "\n".join(lines)


# --- simulate ---------------------------------------------------------------------------------


def simulate_config(path: Path) -> int:
    """The engine alone on a `configUsed` (or a job holding one) with inline prices."""
    from engine.exits import ExitCode
    from states.backtest.validation import ValidJob, synthetic_dates, validate_job
    from wheelsim import ENGINE_VERSION, EngineError, canonical_json, result_sha256, simulate

    try:
        data = read_document(path)
    except Unusable as exc:
        print(str(exc), file=sys.stderr)
        return exc.code
    config = data.get("configUsed", data)
    verdict = validate_job(
        "simulate", {"userId": "local", "engineVersion": ENGINE_VERSION, "configUsed": config}
    )
    if not isinstance(verdict, ValidJob):
        print(f"invalid {verdict.code}: {verdict.message}", file=sys.stderr)
        return ExitCode.INVALID
    if verdict.inline_prices is None:
        print(
            "simulate runs inline prices only; run a history job with run-local --history-dir",
            file=sys.stderr,
        )
        return ExitCode.USAGE
    prices = verdict.inline_prices
    try:
        result = simulate(verdict.config, prices, synthetic_dates(verdict.start, len(prices)))
    except EngineError as exc:
        print(f"ENGINE_ERROR: {exc.message}", file=sys.stderr)
        return ExitCode.FAILED
    sys.stdout.write(canonical_json(result).decode("utf-8") + "\n")
    print(f"sha256 {result_sha256(result)}")
    return ExitCode.SUCCEEDED

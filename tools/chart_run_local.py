"""`run-local` and `record` for CHART_EXPORT steps (CHART_EXPORT §18).

The same composition, selection, lifecycle, checks, names and events as the deployed function;
only the adapters differ. The embedded default needs nothing: `mock` mode with the fixture PNGs
and the five chart templates shipped in the package, an in-memory Firestore seeded from the
file, Cloud Storage as `<out>/gcs/<bucket>/…`, no key and no cloud service. `<out>` persists,
so a rerun of the same file adopts the manifest the first run wrote (§12); in `real` and
`record` modes the usage counters persist there too (`<out>/chart_img_accounts_usage.json`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import compose
from adapters.chart_templates import FolderTemplates
from adapters.chart_usage import MemoryUsageStore
from adapters.memory import FolderBlobStore, MemoryDocumentStore
from engine.cloudevent import Event
from engine.config import ConfigError
from engine.exits import ExitCode
from engine.runner import Stranded
from states.chart_export.config import SHIPPED_TEMPLATES, ChartConfig
from tools.common import outcome_exit, read_flow_run

DEFAULT_OUTPUT = Path(".run-local")
DEFAULT_BUCKET = "artifacts-bucket"
USAGE_FILE = "chart_img_accounts_usage.json"


def add_arguments(parser: argparse.ArgumentParser, *, record: bool = False) -> None:
    parser.add_argument("flow_run", type=Path, help="flow run JSON file (its runId names it)")
    parser.add_argument("--step-id", help="execute this step only (default: selection rules)")
    if not record:
        parser.add_argument(
            "--charts-api-mode",
            choices=("real", "mock", "record"),
            default="mock",
            help="mock (default): shipped fixtures, no network, no key",
        )
    parser.add_argument(
        "--fixtures-dir",
        type=Path,
        help="fixture folder (default: the fixtures shipped in the package; for record: "
        "<out>/fixtures)",
    )
    parser.add_argument(
        "--templates-dir", type=Path, help="more <id>.json chart templates, before the shipped"
    )
    parser.add_argument(
        "--accounts-file",
        type=Path,
        help="accounts in the CHART_IMG_ACCOUNTS_JSON format (real and record modes; default: "
        "the CHART_IMG_ACCOUNTS_JSON variable)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUTPUT,
        help=f"gs:// writes land in <out>/gcs/<bucket>/<path> (default: {DEFAULT_OUTPUT})",
    )
    parser.add_argument(
        "--output-summary", choices=("text", "json", "none"), default="text", help="default: text"
    )
    parser.add_argument("--verbose", action="store_true", help="print the worker's event log")


def run(args: argparse.Namespace, *, record: bool = False) -> int:
    read = read_flow_run(args.flow_run)
    if isinstance(read, str):
        print(read, file=sys.stderr)
        return ExitCode.USAGE
    flow_run, run_id = read
    mode = "record" if record else args.charts_api_mode
    out: Path = args.out
    environ = {**os.environ, "CHARTS_API_MODE": mode}
    environ.setdefault("ARTIFACTS_BUCKET", DEFAULT_BUCKET)
    fixtures = args.fixtures_dir or (out / "fixtures" if mode == "record" else None)
    if fixtures is not None:
        if mode == "record":
            fixtures.mkdir(parents=True, exist_ok=True)
        environ["CHARTS_FIXTURES_DIR"] = str(fixtures)
    if args.accounts_file is not None:
        try:
            environ["CHART_IMG_ACCOUNTS_JSON"] = args.accounts_file.read_text(encoding="utf-8")
        except OSError as exc:
            print(f"cannot read --accounts-file: {type(exc).__name__}", file=sys.stderr)
            return ExitCode.USAGE
    try:
        config = ChartConfig.from_env(environ)
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)  # names the variable only
        return ExitCode.USAGE

    store = MemoryDocumentStore({f"{config.flow_runs_collection}/{run_id}": flow_run})
    blobs = FolderBlobStore(args.flow_run.parent / "gcs", out / "gcs")
    folders = [args.templates_dir] if args.templates_dir else []
    overrides: dict[str, Any] = {
        "store": store,
        "blobs": blobs,
        "templates": FolderTemplates(*folders, SHIPPED_TEMPLATES),
    }
    usage: MemoryUsageStore | None = None
    if mode != "mock":
        usage = MemoryUsageStore(config.default_daily_limit, config.daily_max, load_usage(out))
        overrides["usage"] = usage
    runner = compose.build(
        "chart_export",
        environ,
        config=config,
        stream=sys.stderr,
        level="INFO" if args.verbose else "ERROR",
        **overrides,
    )
    event = Event(
        event_id="run-local",
        event_type="google.cloud.firestore.document.v1.updated",
        subject=f"documents/{config.flow_runs_collection}/{run_id}",
    )
    try:
        outcome = runner.handle(event, only=args.step_id)
    except Stranded:  # cannot happen in memory, but never hide it
        print("the step outcome could not be recorded", file=sys.stderr)
        return ExitCode.FAILED
    if usage is not None:
        save_usage(out, usage, [a.id for a in config.accounts])

    document = store.document(config.flow_runs_collection, run_id) or {}
    step = (document.get("steps") or {}).get(outcome.unit_id or "", {})
    uri = (step.get("outputs") or {}).get("gcs_uri")
    summary = {
        "runId": run_id,
        "mode": mode,
        "outcome": outcome.status,
        "reason": outcome.reason,
        "stepId": outcome.unit_id,
        "patches": store.writes,
        "step": step or None,
        "manifest": str(blobs.local_path(uri)) if uri else None,
        "runError": document.get("error") if outcome.unit_id is None else None,
    }
    show(summary, args.output_summary)
    return outcome_exit(outcome.status, outcome.reason, outcome.unit_id, step.get("status"))


def show(summary: dict[str, Any], form: str) -> None:
    if form == "none":
        return
    if form == "json":
        print(json.dumps(summary, indent=2, ensure_ascii=False, default=str))
        return
    print(f"flow run {summary['runId']} ({summary['mode']} mode)")
    print("Firestore patches it would write:")
    print(json.dumps(summary["patches"], indent=2, ensure_ascii=False, default=str))
    if summary["outcome"] == "noop":
        print(f"nothing executed: {summary['reason']}")
        return
    if summary["stepId"] is None:
        print(f"flow run invalid: {json.dumps(summary['runError'], ensure_ascii=False)}")
        return
    step = summary["step"] or {}
    print(f"step {summary['stepId']}: {step.get('status')}")
    if step.get("error"):
        print(f"error: {json.dumps(step['error'], ensure_ascii=False)}")
    if summary["manifest"]:
        print(f"manifest: {summary['manifest']}")


def load_usage(out: Path) -> dict[str, Any]:
    """Usage documents an earlier local run left, by account id (none: an empty day)."""
    try:
        data = json.loads((out / USAGE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in data.items() if isinstance(v, dict)} if isinstance(data, dict) else {}


def save_usage(out: Path, usage: MemoryUsageStore, account_ids: list[str]) -> None:
    documents = {a: usage.document(a) for a in account_ids}
    out.mkdir(parents=True, exist_ok=True)
    (out / USAGE_FILE).write_text(
        json.dumps({k: v for k, v in documents.items() if v is not None}, indent=2) + "\n",
        encoding="utf-8",
    )

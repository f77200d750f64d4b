"""`run-local` and `record`: execute one LLM_REPORT step on a laptop, no cloud services.

The same composition, lifecycle and states as the deployed function; only the adapters differ
(`adapters/memory.py`, `adapters/cassettes.py`). Exit codes (COMMON.md §9): 0 step SUCCEEDED,
1 step FAILED, 2 usage or configuration error, 3 nothing to execute, 4 flow run invalid.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import compose
from adapters.cassettes import CassetteLLM, RecordingLLM
from adapters.memory import FolderBlobStore, FolderDocuments, MemoryDocumentStore
from adapters.registries import PromptSchemaRegistry
from engine.cloudevent import Event
from engine.config import ConfigError
from engine.exits import ExitCode
from engine.runner import Stranded
from states.llm_client.config import LlmConfig
from states.llm_client.ports import LLM

DEFAULT_OUTPUT = Path(".run-local")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("flow_run", type=Path, help="flow run JSON file (its runId names it)")
    parser.add_argument("--step-id", help="execute this step only (default: selection rules)")
    parser.add_argument(
        "--root",
        type=Path,
        help="folder with llm_prompts/, llm_schemas/, gcs/ and cassettes/ "
        "(default: the flow run file's folder)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUTPUT,
        help=f"where gs:// writes land, as <out>/gcs/<bucket>/<path> (default: {DEFAULT_OUTPUT})",
    )
    parser.add_argument(
        "--cassettes", type=Path, help="cassette folder (default: <root>/cassettes)"
    )
    parser.add_argument("--verbose", action="store_true", help="print the worker's event log")


def _bucket_of(flow_run: dict[str, Any]) -> str:
    for step in (flow_run.get("steps") or {}).values():
        uri = (step.get("outputs") or {}).get("gcs_uri") if isinstance(step, dict) else None
        if isinstance(uri, str) and uri.startswith("gs://"):
            return uri[5:].split("/", 1)[0]
    return "local-artifacts"


def run(args: argparse.Namespace, *, record: bool = False) -> int:
    try:
        flow_run = json.loads(args.flow_run.read_text(encoding="utf-8"))
        run_id = str(flow_run["runId"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        print(f"cannot read a flow run with a runId from {args.flow_run}: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    root: Path = args.root or args.flow_run.parent
    cassettes: Path = args.cassettes or root / "cassettes"
    environ = {"ARTIFACTS_BUCKET": _bucket_of(flow_run), **os.environ}
    has_key = bool(environ.get("GEMINI_API_KEY") or environ.get("GEMINI_API_KEYS_JSON"))
    if record and not has_key:
        print("record needs GEMINI_API_KEY (or GEMINI_API_KEYS_JSON)", file=sys.stderr)
        return ExitCode.USAGE
    try:
        config = LlmConfig.from_env(environ, keyless=not has_key)
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return ExitCode.USAGE

    llm: LLM
    if has_key:
        from adapters.gemini import GeminiLLM

        llm = GeminiLLM(config.gemini.api_key)
        if record:
            llm = RecordingLLM(llm, cassettes)
            print(f"gemini: real API, recording responses into {cassettes}")
        else:
            print("gemini: real API (a key is configured)")
    else:
        llm = CassetteLLM(cassettes)
        print(f"gemini: no key configured, replaying recorded responses from {cassettes}")

    collection = config.flow_runs_collection
    store = MemoryDocumentStore({f"{collection}/{run_id}": flow_run})
    blobs = FolderBlobStore(root / "gcs", args.out / "gcs")
    registry = PromptSchemaRegistry(
        FolderDocuments(root), config.prompts_collection, config.schemas_collection
    )
    runner = compose.build(
        "llm_client",
        environ,
        config=config,
        stream=sys.stderr,
        level="INFO" if args.verbose else "ERROR",
        store=store,
        registry=registry,
        blobs=blobs,
        llm=llm,
    )
    event = Event(
        event_id="run-local",
        event_type="google.cloud.firestore.document.v1.updated",
        subject=f"documents/{collection}/{run_id}",
    )
    print(f"flow run {run_id}: prompts and schemas from {root}, gs:// inputs from {root / 'gcs'}")
    try:
        outcome = runner.handle(event, only=args.step_id)
    except Stranded:  # cannot happen in memory, but never hide it
        print("the step outcome could not be recorded", file=sys.stderr)
        return ExitCode.FAILED

    print("Firestore patches it would write:")
    print(json.dumps(store.writes, indent=2, ensure_ascii=False, default=str))
    if isinstance(llm, CassetteLLM) and llm.missing:
        print(
            f"no cassette for request {llm.missing[0]}: run `worker-llm-client record` with a key",
            file=sys.stderr,
        )
    document = store.document(collection, run_id) or {}
    if outcome.status == "noop":
        print(f"nothing executed: {outcome.reason}")
        return ExitCode.NOTHING
    if outcome.unit_id is None:
        print(f"flow run invalid: {document.get('error')}")
        return ExitCode.INVALID
    step = document["steps"][outcome.unit_id]
    print(f"step {outcome.unit_id}: {step.get('status')}")
    if step.get("error"):
        print(f"error: {json.dumps(step['error'], ensure_ascii=False)}")
    uri = (step.get("outputs") or {}).get("gcs_uri")
    if uri:
        print(f"artifact: {uri} -> {blobs.local_path(uri)}")
    if isinstance(llm, RecordingLLM):
        for path in llm.recorded:
            print(f"recorded: {path}")
    return ExitCode.SUCCEEDED if step.get("status") == "SUCCEEDED" else ExitCode.FAILED

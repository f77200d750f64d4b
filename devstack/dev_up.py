"""`worker-llm-client dev up`: the whole local stack, wired like production, until Ctrl-C.

Starts the Firestore emulator, fake-gcs-server, a Gemini stub that answers every request with a
valid report, N functions-framework instances of the worker, and the event bridge (Eventarc's
stand-in, with optional duplicates, delays and reordering); seeds the example dataset and touches
its flow run so the update fires. Everything it starts is its own process group or thread and is
stopped in reverse order on exit, also on errors.

`--exit-after-terminal` and `--timeout` make it scriptable:
`python -m devstack.dev_up --exit-after-terminal --timeout 120` exits 0 when the demo step
succeeded.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any, Protocol

from devstack.bridge import EventBridge
from devstack.example import DEFAULT_EXAMPLE, Example, load_example, seed
from devstack.gemini_stub import GeminiStub, ok
from devstack.services import (
    DEFAULT_PROJECT,
    FakeGcs,
    FirestoreEmulator,
    FunctionServer,
    ServiceMissing,
    ServiceStartError,
)

FLOW_RUNS = "flow_runs"
TERMINAL = frozenset({"SUCCEEDED", "FAILED", "CANCELLED", "SKIPPED"})
FAKE_GEMINI_API_KEY = "dev-stub-key-not-a-secret"
POLL_SECONDS = 0.25

# What the stub answers to every generateContent: valid for the shipped LLM_REPORT schema
# (`summary.markdown` plus free-form `details`), so the demo step can succeed end to end.
DEMO_REPORT: dict[str, Any] = {
    "summary": {
        "markdown": (
            "**Local demo report** (Gemini stub): monthly trend up, momentum cooling; "
            "watch the 42k support."
        )
    },
    "details": {"source": "devstack gemini stub", "trend": "bullish", "levels": [42000, 48000]},
}


class DevUpError(Exception):
    """The command cannot start as asked (bad example folder); the message says why."""


class _Startable(Protocol):
    def start(self) -> object: ...
    def stop(self) -> None: ...


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be >= 1")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be >= 0")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be >= 0")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be > 0")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `dev up` flags; `tools/cli.py` mounts them on its subcommand."""
    stack = parser.add_argument_group("stack")
    stack.add_argument(
        "--example",
        type=Path,
        default=None,
        help=f"example dataset folder to seed (default: {DEFAULT_EXAMPLE})",
    )
    stack.add_argument(
        "--instances", type=_positive_int, default=2, help="function processes (default: 2)"
    )
    stack.add_argument(
        "--project", default=DEFAULT_PROJECT, help=f"GCP project id (default: {DEFAULT_PROJECT})"
    )
    stack.add_argument("--no-seed", action="store_true", help="start empty: no seeding, no touch")
    stack.add_argument(
        "--log-dir", type=Path, default=None, help="where process logs go (default: a temp dir)"
    )
    stack.add_argument("--firestore-port", type=int, default=None, help="default: a free port")
    stack.add_argument("--gcs-port", type=int, default=None, help="default: a free port")
    stack.add_argument("--quiet", action="store_true", help="no line per bridge delivery")
    faults = parser.add_argument_group("event bridge faults")
    faults.add_argument(
        "--duplicate",
        type=_positive_int,
        default=1,
        metavar="N",
        help="deliver every event N times with the same ce-id (default: 1)",
    )
    faults.add_argument(
        "--delay",
        type=_non_negative_float,
        default=0.0,
        metavar="SECONDS",
        help="wait a random 0..SECONDS before each delivery (default: 0)",
    )
    faults.add_argument(
        "--reorder-window",
        type=_non_negative_int,
        default=0,
        metavar="K",
        help="buffer up to K events and deliver them shuffled (default: 0, in order)",
    )
    faults.add_argument(
        "--fault-seed", type=int, default=None, help="random seed for delays and shuffles"
    )
    stop = parser.add_argument_group("stopping (for scripts)")
    stop.add_argument(
        "--exit-after-terminal",
        action="store_true",
        help="stop once the demo step is terminal; exit 0 only if it SUCCEEDED",
    )
    stop.add_argument(
        "--timeout",
        type=_positive_float,
        default=None,
        metavar="SECONDS",
        help="stop after SECONDS (exit 1 if --exit-after-terminal was still waiting)",
    )


# --------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def demo_step(example: Example) -> str | None:
    """The LLM_REPORT step the demo waits for (first by id), if the example has one."""
    steps = example.flow_run.get("steps") or {}
    ids = sorted(sid for sid, s in steps.items() if s.get("stepType") == "LLM_REPORT")
    return ids[0] if ids else None


def artifacts_bucket(example: Example) -> str:
    """The bucket the example's OHLCV input lives in; the worker writes its report there too."""
    steps: dict[str, Any] = example.flow_run.get("steps") or {}
    step_id = demo_step(example)
    preferred = (steps.get(step_id or "", {}).get("inputs") or {}).get("ohlcvStepId")
    candidates = [preferred] if preferred in steps else []
    candidates += sorted(sid for sid, s in steps.items() if s.get("stepType") == "OHLCV_EXPORT")
    for sid in candidates:
        uri = (steps[sid].get("outputs") or {}).get("gcs_uri")
        if isinstance(uri, str) and uri.startswith("gs://"):
            return uri[5:].split("/", 1)[0]
    raise DevUpError(f"{example.root}: no OHLCV step with an outputs.gcs_uri to take a bucket from")


@contextlib.contextmanager
def _environ(**values: str) -> Iterator[None]:
    """Set variables only while the Google clients read them at construction time."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


class _StopFlag:
    """SIGINT/SIGTERM only set a flag: start-up checks it between phases, the wait loop ends.

    Raising from the handler instead could leave a start thread spawning a process after the
    clean-up ran; checkpoints keep "every start finished, then stop everything" true.
    """

    def __init__(self) -> None:
        self.signal: str | None = None
        self._saved: dict[int, Any] = {}

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # signal handlers only exist in the main thread; callers stop us otherwise
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._saved[sig] = signal.signal(sig, self._handle)

    def restore(self) -> None:
        for sig, handler in self._saved.items():
            signal.signal(sig, handler)
        self._saved.clear()

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        self.signal = signal.Signals(signum).name

    def checkpoint(self) -> None:
        """Abandon the start-up if a signal came; the ExitStack then stops what is up."""
        if self.signal is not None:
            raise _Interrupted(self.signal)


class _Interrupted(Exception):
    """A signal arrived during start-up."""


def _start_all(services: list[_Startable], stack: ExitStack, flag: _StopFlag) -> None:
    """Start services concurrently (JVM and interpreter start-ups overlap on two cores).

    Each `stop` is registered before its `start`, and this returns only once every start
    finished, so the clean-up never races a process being spawned. On a signal the services are
    stopped at once, which makes the pending starts fail fast.
    """
    for service in services:
        stack.callback(service.stop)
    pool = ThreadPoolExecutor(len(services), thread_name_prefix="dev-up-start")
    futures = [pool.submit(service.start) for service in services]
    try:
        stopping = False
        while wait(futures, timeout=0.2).not_done:
            if flag.signal is not None and not stopping:
                stopping = True
                for service in services:
                    service.stop()
    finally:
        pool.shutdown(wait=True)
    flag.checkpoint()
    for future in futures:
        future.result()  # re-raise the first start-up failure


def _step(db: Any, run_id: str, step_id: str) -> dict[str, Any]:
    snap = db.collection(FLOW_RUNS).document(run_id).get()
    data = snap.to_dict() or {}
    step: dict[str, Any] = (data.get("steps") or {}).get(step_id) or {}
    return step


# --------------------------------------------------------------------------------------
# The command
# --------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    """Bring the stack up, seed, wait, summarize, tear down; the exit status of `dev up`."""

    def say(line: str) -> None:
        print(line, flush=True)

    flag = _StopFlag()
    flag.install()
    try:
        return _run(args, say, flag)
    except _Interrupted as exc:
        say(f"interrupted ({exc}) during start-up; everything stopped")
        return 130
    except (DevUpError, ServiceMissing, ServiceStartError) as exc:
        say(f"dev up failed: {exc}")
        return 1
    finally:
        flag.restore()


def _run(args: argparse.Namespace, say: Callable[[str], None], flag: _StopFlag) -> int:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import firestore, storage  # type: ignore[attr-defined]

    root: Path = args.example or DEFAULT_EXAMPLE
    if not (root / "flow_run.json").is_file():
        raise DevUpError(f"{root} is not an example folder (no flow_run.json)")
    example = load_example(root)
    bucket = artifacts_bucket(example)
    step_id = None if args.no_seed else demo_step(example)
    run_id = example.run_id
    project: str = args.project
    log_dir: Path = args.log_dir or Path(tempfile.mkdtemp(prefix="worker-llm-client-dev-"))
    log_dir.mkdir(parents=True, exist_ok=True)

    with ExitStack() as stack:
        say(f"starting the local stack (logs in {log_dir}) ...")
        emulator = FirestoreEmulator(project=project, port=args.firestore_port, log_dir=log_dir)
        gcs_server = FakeGcs(port=args.gcs_port, log_dir=log_dir)
        gemini = stack.enter_context(GeminiStub())
        gemini.set_default(ok(json.dumps(DEMO_REPORT)))
        env = {
            "FIRESTORE_EMULATOR_HOST": emulator.host,
            "STORAGE_EMULATOR_HOST": gcs_server.endpoint,
            "GOOGLE_GEMINI_BASE_URL": gemini.base_url,
            "GCP_PROJECT": project,
            "GOOGLE_CLOUD_PROJECT": project,
            "GEMINI_API_KEY": FAKE_GEMINI_API_KEY,
            "ARTIFACTS_BUCKET": bucket,
        }
        names = [chr(ord("a") + i) if i < 26 else str(i) for i in range(args.instances)]
        functions = [
            FunctionServer(env={**env, "INSTANCE": name}, log_dir=log_dir) for name in names
        ]
        _start_all([emulator, gcs_server, *functions], stack, flag)

        with _environ(
            FIRESTORE_EMULATOR_HOST=emulator.host, STORAGE_EMULATOR_HOST=gcs_server.endpoint
        ):
            db = firestore.Client(project=project)
            gcs = storage.Client(project=project, credentials=AnonymousCredentials())  # type: ignore[no-untyped-call]
        stack.callback(db.close)
        stack.callback(gcs.close)

        bridge = EventBridge(
            db=db,
            function_urls=[f.url for f in functions],
            project=project,
            collection=FLOW_RUNS,
            duplicate=args.duplicate,
            delay=args.delay,
            reorder_window=args.reorder_window,
            seed=args.fault_seed,
            log=None if args.quiet else (lambda line: say(f"[bridge] {line}")),
        )
        bridge.start()
        # Ctrl-C cancels pending deliveries; the normal exits drain them first (see below).
        stack.callback(bridge.stop, drain=False)
        flag.checkpoint()

        if not args.no_seed:
            seed(example, db, gcs, collection=FLOW_RUNS)
            # An orchestrator flips a step to READY with an update; mirror that with a touch.
            db.collection(FLOW_RUNS).document(run_id).update({"updatedAt": _now()})
            say(f"seeded {FLOW_RUNS}/{run_id} from {example.root} and touched it")

        _print_where(say, emulator, gcs_server, gemini, functions, bridge, bucket, run_id, step_id)

        flag.checkpoint()
        reason = _wait(args, flag, db, run_id, step_id)
        if reason != "signal":
            # Let the bridge hand over the worker's own final writes before the summary.
            bridge.wait_idle(timeout=5.0, quiet=0.5)
        bridge.stop(drain=reason != "signal")

        step = _step(db, run_id, step_id) if step_id else {}
        status = step.get("status")
        say(f"stopping ({reason}) ...")
        say("summary:")
        if step_id:
            say(f"  step {step_id}: {status}")
            say(f"  artifact: {(step.get('outputs') or {}).get('gcs_uri') or '-'}")
            if step.get("error"):
                say(f"  error: {json.dumps(step['error'])}")
        say(f"  gemini requests: {len(gemini.requests)}")
        say(f"  bridge: {bridge.stats.line()}")
    say("stopped everything")

    if args.exit_after_terminal and step_id:
        return 0 if status == "SUCCEEDED" else 1
    return 0


def _wait(
    args: argparse.Namespace, flag: _StopFlag, db: Any, run_id: str, step_id: str | None
) -> str:
    """Block until a signal, the demo step turning terminal (if asked) or the timeout."""
    deadline = time.monotonic() + args.timeout if args.timeout else None
    while True:
        if flag.signal is not None:
            return "signal"
        if args.exit_after_terminal and step_id:
            with contextlib.suppress(Exception):  # a transient emulator hiccup: poll again
                if _step(db, run_id, step_id).get("status") in TERMINAL:
                    return "terminal"
        if deadline is not None and time.monotonic() >= deadline:
            return "timeout"
        time.sleep(POLL_SECONDS)


def _print_where(
    say: Callable[[str], None],
    emulator: FirestoreEmulator,
    gcs_server: FakeGcs,
    gemini: GeminiStub,
    functions: list[FunctionServer],
    bridge: EventBridge,
    bucket: str,
    run_id: str,
    step_id: str | None,
) -> None:
    project = emulator.project
    docs = f"{emulator.base_url}/v1/projects/{project}/databases/(default)/documents"
    say("")
    say("local stack is up:")
    say(f"  Firestore emulator  {emulator.host}  pid {emulator.pid}")
    say(f"    FIRESTORE_EMULATOR_HOST={emulator.host}")
    say(f"    flow run (REST):   {docs}/{FLOW_RUNS}/{run_id}")
    say(f"    log:               {emulator.log_path}")
    say(f"  fake-gcs-server     {gcs_server.endpoint}  pid {gcs_server.pid}")
    say(f"    STORAGE_EMULATOR_HOST={gcs_server.endpoint}")
    say(f"    objects:           {gcs_server.endpoint}/storage/v1/b/{bucket}/o")
    say(f"    log:               {gcs_server.log_path}")
    say(f"  Gemini stub         {gemini.base_url}  (every request gets a valid report)")
    for server in functions:
        instance = server.env.get("INSTANCE", "?")
        say(f"  function {instance}          {server.url}  pid {server.pid}")
        say(f"    stdout:            {server.stdout_path}")
        say(f"    stderr:            {server.stderr_path}")
    say(
        f"  event bridge        {FLOW_RUNS} -> {len(functions)} function(s), "
        f"duplicate={bridge.duplicate} delay={bridge.delay:g}s "
        f"reorder-window={bridge.reorder_window}"
    )
    touch = (
        "from google.cloud import firestore; from datetime import datetime, UTC; "
        f'firestore.Client(project="{project}").collection("{FLOW_RUNS}")'
        f'.document("{run_id}").update({{"updatedAt": datetime.now(UTC).isoformat()}})'
    )
    say("trigger again (an update the bridge delivers; the worker no-ops unless a step is READY):")
    say(f"  FIRESTORE_EMULATOR_HOST={emulator.host} uv run python -c {shlex.quote(touch)}")
    body = json.dumps({"fields": {"updatedAt": {"stringValue": "touched-by-curl"}}})
    say(
        f"  curl -sX PATCH '{docs}/{FLOW_RUNS}/{run_id}?updateMask.fieldPaths=updatedAt' "
        f"-H 'Content-Type: application/json' -d '{body}'"
    )
    if step_id:
        field = f"steps.{step_id}.status"
        ready = json.dumps(
            {
                "fields": {
                    "steps": {
                        "mapValue": {
                            "fields": {
                                step_id: {
                                    "mapValue": {"fields": {"status": {"stringValue": "READY"}}}
                                }
                            }
                        }
                    }
                }
            }
        )
        say("run the step again (flip it back to READY, as the orchestrator would):")
        say(
            f"  curl -sX PATCH '{docs}/{FLOW_RUNS}/{run_id}?updateMask.fieldPaths={field}' "
            f"-H 'Content-Type: application/json' -d '{ready}'"
        )
    say("Ctrl-C stops everything.")
    say("")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.dev_up", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())

"""`dev up`: the TDA pipeline locally, wired like production, until Ctrl-C.

Starts the Firestore emulator, fake-gcs-server, the Chart-IMG stub (one demo account), the Gemini
stub (every request gets a valid report), N functions-framework processes per worker and one
event bridge per Eventarc trigger (optional duplicates, delays and reordering):

    flow_runs     updated -> on_flow_run_updated               (worker_llm_client)
    flow_runs     updated -> on_chart_export_flow_run_updated  (worker_chart_export)
    backtestJobs  created -> on_backtest_job_written           (worker_backtest)

It seeds the pipeline example — a READY `CHART_EXPORT` step and a READY `LLM_REPORT` step that
depends on it — and touches the flow run, so the chart worker renders and writes its manifest,
its finalize write wakes the LLM worker, and the report is made from those charts. It also
creates the example backtest job, whose `created` event runs the backtest worker. Everything it
starts is its own process group or thread and is stopped in reverse order on exit, also on
errors. The recovery functions are not served: nothing is left to recover in a clean run, and
`worker-<name> recover-stale` does the same sweep by hand.

`--exit-after-terminal` and `--timeout` make it scriptable:
`python -m devstack.dev_up --exit-after-terminal --timeout 120` exits 0 when every demo step
succeeded and the job completed.
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
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any, Protocol

from devstack import REPO_ROOT
from devstack.bridge import CREATED, EventBridge
from devstack.chart_img_stub import ChartImgStub
from devstack.cloudevents import UPDATED
from devstack.example import PIPELINE_EXAMPLE, Example, load_example, seed
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
BACKTEST_JOBS = "backtestJobs"
BACKTEST_RESULTS = "backtestResults"
DEFAULT_JOB = REPO_ROOT / "examples" / "backtest" / "job.json"
STEP_TERMINAL = frozenset({"SUCCEEDED", "FAILED", "CANCELLED", "SKIPPED"})
JOB_TERMINAL = frozenset({"completed", "failed"})
WATCHED_STEP_TYPES = ("CHART_EXPORT", "LLM_REPORT")
POLL_SECONDS = 0.25

# Stand-ins for secrets: the stubs accept them, and they are visibly not real.
FAKE_GEMINI_API_KEY = "dev-stub-key-not-a-secret"
DEV_CHART_ACCOUNT = "dev-account"
DEV_CHART_KEY = "dev-stub-chart-key-not-a-secret"
DEV_CHART_DAILY_LIMIT = 44
DEV_CHART_PLAN = "BASIC"

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


@dataclass(frozen=True)
class Trigger:
    """One deployed function and the Eventarc trigger that feeds it (deploy/workers/*.sh)."""

    worker: str
    target: str
    collection: str
    event_type: str


TRIGGERS = (
    Trigger("llm-client", "on_flow_run_updated", FLOW_RUNS, UPDATED),
    Trigger("chart-export", "on_chart_export_flow_run_updated", FLOW_RUNS, UPDATED),
    Trigger("backtest", "on_backtest_job_written", BACKTEST_JOBS, CREATED),
)


@dataclass(frozen=True)
class Watched:
    """A unit of work the demo waits for: a step of the seeded flow run, or the seeded job."""

    collection: str
    doc_id: str
    step_id: str | None = None  # None: the document itself (a backtest job)
    kind: str = ""

    @property
    def label(self) -> str:
        where = f"{self.collection}/{self.doc_id}"
        return f"{where} step {self.step_id} ({self.kind})" if self.step_id else where

    def read(self, db: Any) -> dict[str, Any]:
        data: dict[str, Any] = db.collection(self.collection).document(self.doc_id).get().to_dict()
        data = data or {}
        if self.step_id is None:
            return data
        step: dict[str, Any] = (data.get("steps") or {}).get(self.step_id) or {}
        return step

    def terminal(self, status: Any) -> bool:
        return bool(status in (STEP_TERMINAL if self.step_id else JOB_TERMINAL))

    def succeeded(self, status: Any) -> bool:
        return bool(status == ("SUCCEEDED" if self.step_id else "completed"))


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
        help="example dataset folder to seed (default: examples/pipeline)",
    )
    stack.add_argument(
        "--backtest-job",
        type=Path,
        default=DEFAULT_JOB,
        metavar="JOB_JSON",
        help="backtest job document to create (default: examples/backtest/job.json)",
    )
    stack.add_argument(
        "--no-backtest-job", action="store_true", help="seed the flow run only, no backtest job"
    )
    stack.add_argument(
        "--instances",
        type=_positive_int,
        default=2,
        help="function processes per worker (default: 2)",
    )
    stack.add_argument(
        "--project", default=DEFAULT_PROJECT, help=f"GCP project id (default: {DEFAULT_PROJECT})"
    )
    stack.add_argument(
        "--no-seed", action="store_true", help="start empty: no seeding, no touch, no job"
    )
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
        help=(
            "stop once every demo step and the job are terminal; exit 0 only if the steps "
            "SUCCEEDED and the job completed"
        ),
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


def watched_steps(example: Example) -> list[Watched]:
    """The READY steps the pipeline runs (chart steps before the reports that read them)."""
    steps: dict[str, Any] = example.flow_run.get("steps") or {}
    order = {kind: n for n, kind in enumerate(WATCHED_STEP_TYPES)}
    ready = [
        (order[s["stepType"]], sid, s["stepType"])
        for sid, s in steps.items()
        if s.get("stepType") in order and s.get("status") == "READY"
    ]
    return [Watched(FLOW_RUNS, example.run_id, sid, kind) for _, sid, kind in sorted(ready)]


def artifacts_bucket(example: Example) -> str:
    """The bucket the example's OHLCV input lives in; the workers write their artifacts there."""
    steps: dict[str, Any] = example.flow_run.get("steps") or {}
    for sid in sorted(steps):
        if steps[sid].get("stepType") != "OHLCV_EXPORT":
            continue
        uri = (steps[sid].get("outputs") or {}).get("gcs_uri")
        if isinstance(uri, str) and uri.startswith("gs://"):
            return uri[5:].split("/", 1)[0]
    raise DevUpError(f"{example.root}: no OHLCV step with an outputs.gcs_uri to take a bucket from")


def load_job(path: Path) -> dict[str, Any]:
    """A backtest job document (a JSON object naming its `jobId`), as `run-local` takes it."""
    try:
        job = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DevUpError(f"{path}: not a readable JSON job ({type(exc).__name__})") from None
    if not isinstance(job, dict) or not isinstance(job.get("jobId"), str) or not job["jobId"]:
        raise DevUpError(f"{path}: a backtest job is a JSON object with a non-empty jobId")
    return job


def chart_accounts() -> list[dict[str, Any]]:
    """The demo account of CHART_IMG_ACCOUNTS_JSON; the stub knows the same key."""
    return [{"id": DEV_CHART_ACCOUNT, "apiKey": DEV_CHART_KEY, "dailyLimit": DEV_CHART_DAILY_LIMIT}]


def demo_account(stub: ChartImgStub) -> ChartImgStub:
    """The stub knows the key of `chart_accounts()`, with a fresh day's quota."""
    account = {"accountId": DEV_CHART_ACCOUNT, "dailyLimit": DEV_CHART_DAILY_LIMIT, "usedToday": 0}
    stub.configure(DEV_CHART_PLAN, {DEV_CHART_KEY: account})
    return stub


def worker_env(
    trigger: Trigger, base: Mapping[str, str], bucket: str, gemini: str, charts: str
) -> dict[str, str]:
    """The variables a worker's deploy profile would set, pointed at the local stubs."""
    env = dict(base)
    if trigger.worker == "llm-client":
        env.update(
            ARTIFACTS_BUCKET=bucket,
            GOOGLE_GEMINI_BASE_URL=gemini,
            GEMINI_API_KEY=FAKE_GEMINI_API_KEY,
        )
    elif trigger.worker == "chart-export":
        env.update(
            ARTIFACTS_BUCKET=bucket,
            CHARTS_API_MODE="real",
            CHART_IMG_BASE_URL=charts,
            CHART_IMG_PLAN=DEV_CHART_PLAN,
            CHART_IMG_ACCOUNTS_JSON=json.dumps(chart_accounts()),
        )
    return env


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


# --------------------------------------------------------------------------------------
# The command
# --------------------------------------------------------------------------------------


@dataclass
class _Stack:
    """What `_run` brought up, for the listing and the summary."""

    emulator: FirestoreEmulator
    gcs_server: FakeGcs
    gemini: GeminiStub
    charts: ChartImgStub
    functions: dict[Trigger, list[FunctionServer]]
    bridges: dict[Trigger, EventBridge]
    bucket: str


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

    root: Path = args.example or PIPELINE_EXAMPLE
    if not (root / "flow_run.json").is_file():
        raise DevUpError(f"{root} is not an example folder (no flow_run.json)")
    example = load_example(root)
    bucket = artifacts_bucket(example)
    job = None if args.no_seed or args.no_backtest_job else load_job(args.backtest_job)
    watched = [] if args.no_seed else watched_steps(example)
    if job is not None:
        watched.append(Watched(BACKTEST_JOBS, job["jobId"]))
    project: str = args.project
    log_dir: Path = args.log_dir or Path(tempfile.mkdtemp(prefix="tda-workers-dev-"))
    log_dir.mkdir(parents=True, exist_ok=True)

    with ExitStack() as stack:
        say(f"starting the local stack (logs in {log_dir}) ...")
        emulator = FirestoreEmulator(project=project, port=args.firestore_port, log_dir=log_dir)
        gcs_server = FakeGcs(port=args.gcs_port, log_dir=log_dir)
        gemini = stack.enter_context(GeminiStub())
        gemini.set_default(ok(json.dumps(DEMO_REPORT)))
        charts = demo_account(stack.enter_context(ChartImgStub()))
        base = {
            "FIRESTORE_EMULATOR_HOST": emulator.host,
            "STORAGE_EMULATOR_HOST": gcs_server.endpoint,
            "GCP_PROJECT": project,
            "GOOGLE_CLOUD_PROJECT": project,
        }
        names = [chr(ord("a") + i) if i < 26 else str(i) for i in range(args.instances)]
        functions = {
            trigger: [
                FunctionServer(
                    env={
                        **worker_env(trigger, base, bucket, gemini.base_url, charts.base_url),
                        "INSTANCE": f"{trigger.worker}-{name}",
                    },
                    target=trigger.target,
                    log_dir=log_dir,
                )
                for name in names
            ]
            for trigger in TRIGGERS
        }
        servers = [server for group in functions.values() for server in group]
        _start_all([emulator, gcs_server, *servers], stack, flag)

        with _environ(
            FIRESTORE_EMULATOR_HOST=emulator.host, STORAGE_EMULATOR_HOST=gcs_server.endpoint
        ):
            db = firestore.Client(project=project)
            gcs = storage.Client(project=project, credentials=AnonymousCredentials())  # type: ignore[no-untyped-call]
        stack.callback(db.close)
        stack.callback(gcs.close)

        bridges: dict[Trigger, EventBridge] = {}
        for trigger, group in functions.items():
            bridge = EventBridge(
                db=db,
                function_urls=[server.url for server in group],
                project=project,
                collection=trigger.collection,
                event_type=trigger.event_type,
                duplicate=args.duplicate,
                delay=args.delay,
                reorder_window=args.reorder_window,
                seed=args.fault_seed,
                log=None if args.quiet else _bridge_log(say, trigger),
            )
            # Registered first: Ctrl-C cancels pending deliveries; the normal exits drain them
            # (below). A bridge that fails to start has already stopped itself.
            stack.callback(bridge.stop, drain=False)
            bridge.start()
            bridges[trigger] = bridge
        flag.checkpoint()
        up = _Stack(emulator, gcs_server, gemini, charts, functions, bridges, bucket)

        if not args.no_seed:
            seed(example, db, gcs, collection=FLOW_RUNS)
            # An orchestrator flips steps to READY with an update; mirror that with a touch.
            db.collection(FLOW_RUNS).document(example.run_id).update({"updatedAt": _now()})
            say(f"seeded {FLOW_RUNS}/{example.run_id} from {example.root} and touched it")
        if job is not None:
            db.collection(BACKTEST_JOBS).document(job["jobId"]).create(job)
            say(f"created {BACKTEST_JOBS}/{job['jobId']} from {args.backtest_job}")

        _print_where(say, up, example.run_id, watched)

        flag.checkpoint()
        reason = _wait(args, flag, db, watched)
        if reason != "signal":
            # Let the bridges hand over the workers' own final writes before the summary.
            for bridge in bridges.values():
                bridge.wait_idle(timeout=5.0, quiet=0.5)
        for bridge in bridges.values():
            bridge.stop(drain=reason != "signal")

        say(f"stopping ({reason}) ...")
        statuses = _summary(say, db, gcs, up, watched)
    say("stopped everything")

    if args.exit_after_terminal and watched:
        return 0 if all(unit.succeeded(statuses.get(unit)) for unit in watched) else 1
    return 0


def _bridge_log(say: Callable[[str], None], trigger: Trigger) -> Callable[[str], None]:
    return lambda line: say(f"[bridge {trigger.worker}] {line}")


def _wait(args: argparse.Namespace, flag: _StopFlag, db: Any, watched: list[Watched]) -> str:
    """Block until a signal, every watched unit terminal (if asked) or the timeout."""
    deadline = time.monotonic() + args.timeout if args.timeout else None
    while True:
        if flag.signal is not None:
            return "signal"
        if args.exit_after_terminal and watched:
            with contextlib.suppress(Exception):  # a transient emulator hiccup: poll again
                if all(unit.terminal(unit.read(db).get("status")) for unit in watched):
                    return "terminal"
        if deadline is not None and time.monotonic() >= deadline:
            return "timeout"
        time.sleep(POLL_SECONDS)


def _summary(
    say: Callable[[str], None], db: Any, gcs: Any, up: _Stack, watched: list[Watched]
) -> dict[Watched, Any]:
    """What happened, unit by unit, with the stubs' view of it; returns each unit's status."""
    statuses: dict[Watched, Any] = {}
    say("summary:")
    for unit in watched:
        doc = unit.read(db)
        status = statuses[unit] = doc.get("status")
        say(f"  {unit.label}: {status}")
        outputs = doc.get("outputs") or {}
        if unit.kind == "CHART_EXPORT":
            say(f"    manifest: {outputs.get('gcs_uri') or '-'}")
            pngs = [r.get("png_gcs_uri") for r in _manifest_items(gcs, outputs.get("gcs_uri"))]
            for uri in pngs:
                say(f"    png:      {uri}")
        elif unit.kind == "LLM_REPORT":
            say(f"    report:   {outputs.get('gcs_uri') or '-'}")
        elif unit.step_id is None:
            result = db.collection(BACKTEST_RESULTS).document(unit.doc_id).get()
            say(f"    result:   {BACKTEST_RESULTS}/{unit.doc_id if result.exists else '-'}")
            if result.exists:
                say(f"    {_headline(result.to_dict() or {})}")
        if doc.get("error"):
            say(f"    error:    {json.dumps(doc['error'])}")
    charts = up.charts.state()
    over = sum(a["overLimit"] for a in charts["accounts"].values())
    say(f"  chart-img stub: {charts['total']} request(s) {charts['byAccount']}, over limit {over}")
    images = sum(_inline_images(r.body) for r in up.gemini.requests)
    say(f"  gemini stub: {len(up.gemini.requests)} request(s), {images} chart image(s) attached")
    for trigger, bridge in up.bridges.items():
        say(f"  bridge {trigger.worker}: {bridge.stats.line()}")
    return statuses


def _headline(result: Mapping[str, Any]) -> str:
    """Return, drawdown, cycles and the hash of a stored result, for the summary."""
    figures = result.get("backtestResult") or {}

    def percent(name: str) -> str:
        value = figures.get(name)
        return f"{value * 100:+.2f} %" if isinstance(value, int | float) else "-"

    return (
        f"return {percent('totalReturn')}, max drawdown {percent('maxDrawdown')}, "
        f"cycles {figures.get('cyclesCompleted', '-')}, "
        f"sha256 {str(result.get('resultSha256', '-'))[:16]}"
    )


def _manifest_items(gcs: Any, uri: Any) -> list[dict[str, Any]]:
    """The manifest's items (empty when there is none or it cannot be read)."""
    if not isinstance(uri, str) or not uri.startswith("gs://"):
        return []
    bucket, _, name = uri[5:].partition("/")
    with contextlib.suppress(Exception):  # the summary reports; it never fails the run
        items = json.loads(gcs.bucket(bucket).blob(name).download_as_bytes()).get("items")
        return [i for i in items if isinstance(i, dict)] if isinstance(items, list) else []
    return []


def _inline_images(body: Mapping[str, Any]) -> int:
    """Image parts of one generateContent request body."""
    return sum(
        1
        for content in body.get("contents") or []
        for part in (content.get("parts") or [])
        if isinstance(part, dict) and "inlineData" in part
    )


def _print_where(
    say: Callable[[str], None], up: _Stack, run_id: str, watched: list[Watched]
) -> None:
    emulator, gcs_server = up.emulator, up.gcs_server
    project = emulator.project
    docs = f"{emulator.base_url}/v1/projects/{project}/databases/(default)/documents"
    say("")
    say("local stack is up:")
    say(f"  Firestore emulator  {emulator.host}  pid {emulator.pid}")
    say(f"    FIRESTORE_EMULATOR_HOST={emulator.host}")
    say(f"    flow run (REST):   {docs}/{FLOW_RUNS}/{run_id}")
    for unit in watched:
        if unit.step_id is None:
            say(f"    job (REST):        {docs}/{unit.collection}/{unit.doc_id}")
    say(f"    log:               {emulator.log_path}")
    say(f"  fake-gcs-server     {gcs_server.endpoint}  pid {gcs_server.pid}")
    say(f"    STORAGE_EMULATOR_HOST={gcs_server.endpoint}")
    say(f"    objects:           {gcs_server.endpoint}/storage/v1/b/{up.bucket}/o")
    say(f"    log:               {gcs_server.log_path}")
    say(f"  Gemini stub         {up.gemini.base_url}  (every request gets a valid report)")
    say(
        f"  Chart-IMG stub      {up.charts.base_url}  (plan {DEV_CHART_PLAN}, account "
        f"{DEV_CHART_ACCOUNT}: {DEV_CHART_DAILY_LIMIT} a day)"
    )
    say(f"    state:             {up.charts.base_url}/__stub/state")
    for trigger, group in up.functions.items():
        for server in group:
            instance = server.env.get("INSTANCE", "?")
            say(f"  function {instance:<16} {server.url}  pid {server.pid}  {trigger.target}")
            say(f"    stdout:            {server.stdout_path}")
            say(f"    stderr:            {server.stderr_path}")
    for trigger, bridge in up.bridges.items():
        kind = trigger.event_type.rsplit(".", 1)[-1]
        say(
            f"  event bridge        {trigger.collection} {kind} -> {trigger.worker} "
            f"({len(bridge.function_urls)} function(s)), duplicate={bridge.duplicate} "
            f"delay={bridge.delay:g}s reorder-window={bridge.reorder_window}"
        )
    touch = (
        "from google.cloud import firestore; from datetime import datetime, UTC; "
        f'firestore.Client(project="{project}").collection("{FLOW_RUNS}")'
        f'.document("{run_id}").update({{"updatedAt": datetime.now(UTC).isoformat()}})'
    )
    say("trigger again (an update the bridges deliver; a worker no-ops unless a step is READY):")
    say(f"  FIRESTORE_EMULATOR_HOST={emulator.host} uv run python -c {shlex.quote(touch)}")
    body = json.dumps({"fields": {"updatedAt": {"stringValue": "touched-by-curl"}}})
    say(
        f"  curl -sX PATCH '{docs}/{FLOW_RUNS}/{run_id}?updateMask.fieldPaths=updatedAt' "
        f"-H 'Content-Type: application/json' -d '{body}'"
    )
    for unit in watched:
        if unit.step_id is None:
            continue
        field = (
            f"steps.`{unit.step_id}`.status"
            if ":" in unit.step_id
            else f"steps.{unit.step_id}.status"
        )
        ready = json.dumps(
            {
                "fields": {
                    "steps": {
                        "mapValue": {
                            "fields": {
                                unit.step_id: {
                                    "mapValue": {"fields": {"status": {"stringValue": "READY"}}}
                                }
                            }
                        }
                    }
                }
            }
        )
        say(f"run {unit.step_id} again (flip it back to READY, as the orchestrator would):")
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

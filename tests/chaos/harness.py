"""Chaos harness: many seeded flow runs, racing deliveries, service outages and the audit.

Kept apart from the scenarios so that each test reads as: inject faults, wait until every step
settles, audit the invariants, print one figures line. Everything is bounded: waits give up with
an assertion that says what was still pending.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import requests
from google.auth.credentials import AnonymousCredentials
from google.cloud import firestore as gcf
from google.cloud import storage  # type: ignore[attr-defined]

import compose
from adapters.firestore import FirestoreDocumentStore, FirestoreRegistry
from adapters.gcs import GcsBlobStore
from adapters.registries import PromptSchemaRegistry
from devstack.cloudevents import firestore_update_event
from devstack.example import load_example
from devstack.gemini_stub import RecordedRequest, Reply, ok
from devstack.services import FakeGcs, FirestoreEmulator, FunctionServer, LogMark, post_event
from engine.runner import Runner
from states.flow_run.contracts import RUN_ID_RE
from states.llm_client.errors import ErrorCode
from states.llm_client.ports import LLMRequest, LLMResponse
from tests.conftest import FAKE_GEMINI_API_KEY, PROJECT
from tests.contracts import load

BUCKET = "artifacts-bucket"
EXAMPLE = load_example()
TERMINAL = ("SUCCEEDED", "FAILED")
# The only moves this worker may make (SPEC §2): READY → RUNNING → SUCCEEDED | FAILED.
RANK = {"READY": 0, "RUNNING": 1, "SUCCEEDED": 2, "FAILED": 2}
CODES = frozenset(str(code) for code in ErrorCode)

T = TypeVar("T")


# --------------------------------------------------------------------------------------
# Seeded flow runs
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChaosRun:
    """One flow run cloned from the shipped example: its own runId, inputs and READY step."""

    run_id: str
    step_id: str
    timeframe: str
    doc: dict[str, Any]
    objects: dict[str, bytes]  # gs:// URI → bytes of its upstream inputs

    @property
    def artifact_name(self) -> str:
        return f"{self.run_id}/{self.timeframe}/{self.step_id}.json"

    @property
    def artifact_uri(self) -> str:
        return f"gs://{BUCKET}/{self.artifact_name}"

    def event(self, document: Mapping[str, Any] | None = None) -> tuple[dict[str, str], bytes]:
        """The Eventarc delivery of a document version (by default the seeded READY one)."""
        return firestore_update_event(
            project=PROJECT, run_id=self.run_id, document=document or self.doc
        )


def make_runs(tag: str, count: int) -> list[ChaosRun]:
    """`count` independent copies of the example; `tag` keeps scenarios' runIds apart.

    The OHLCV input carries the runId (`chaosTag`), so each Gemini request the stub records can
    be attributed to its run: the per-run call count is what proves "one call per claim".
    """
    base = EXAMPLE.run_id
    runs = []
    for index in range(count):
        run_id = f"20260101-{index:02d}0000_BTCUSDT_{tag}{index:02d}"
        assert RUN_ID_RE.match(run_id), run_id
        doc = json.loads(json.dumps(EXAMPLE.flow_run).replace(base, run_id))
        (step_id,) = [
            sid
            for sid, step in doc["steps"].items()
            if step["stepType"] == "LLM_REPORT" and step["status"] == "READY"
        ]
        step = doc["steps"][step_id]
        ohlcv_uri = doc["steps"][step["inputs"]["ohlcvStepId"]]["outputs"]["gcs_uri"]
        objects = {}
        for uri, data in EXAMPLE.objects.items():
            new_uri = uri.replace(base, run_id)
            if new_uri == ohlcv_uri:
                data = json.dumps({**json.loads(data), "chaosTag": run_id}).encode()
            elif new_uri.endswith(".json"):
                data = data.replace(base.encode(), run_id.encode())
            objects[new_uri] = data
        runs.append(ChaosRun(run_id, step_id, step["timeframe"], doc, objects))
    return runs


def seed_registries(db: Any) -> None:
    for prompt_id, doc in EXAMPLE.prompts.items():
        db.collection("llm_prompts").document(prompt_id).set(doc)
    for schema_id, doc in EXAMPLE.schemas.items():
        db.collection("llm_schemas").document(schema_id).set(doc)


def seed_objects(gcs: Any, runs: Iterable[ChaosRun]) -> None:
    bucket = gcs.bucket(BUCKET)
    if not bucket.exists():
        bucket = gcs.create_bucket(BUCKET)
    for run in runs:
        for uri, data in run.objects.items():
            name = uri.removeprefix(f"gs://{BUCKET}/")
            content_type = "image/png" if name.endswith(".png") else "application/json"
            bucket.blob(name).upload_from_string(data, content_type=content_type)


def seed_runs(db: Any, runs: Iterable[ChaosRun]) -> None:
    for run in runs:
        db.collection("flow_runs").document(run.run_id).set(run.doc)


def reply_text(reply: Reply) -> str:
    """The candidate text of a successful scripted reply."""
    return str(reply.body["candidates"][0]["content"]["parts"][0]["text"])


def report_reply(marker: str, delay: float = 0.0) -> Reply:
    """A schema-valid report whose markdown is `marker`: text that must never be logged."""
    return ok(
        json.dumps({"summary": {"markdown": marker}, "details": {"chaos": True}}), delay=delay
    )


# --------------------------------------------------------------------------------------
# Waiting and reading
# --------------------------------------------------------------------------------------


def wait_for(
    probe: Callable[[], T | None], timeout: float, what: Callable[[], str], interval: float = 0.1
) -> T:
    """Poll `probe` until it returns something truthy; fail with `what()` after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"gave up after {timeout:.0f}s: {what()}")
        time.sleep(interval)


def steps(db: Any, runs: Sequence[ChaosRun]) -> dict[str, tuple[dict[str, Any] | None, Any]]:
    """runId → (the LLM step as stored, the document's update_time)."""
    refs = [db.collection("flow_runs").document(run.run_id) for run in runs]
    found = {snap.id: snap for snap in db.get_all(refs)}
    result: dict[str, tuple[dict[str, Any] | None, Any]] = {}
    for run in runs:
        snap = found.get(run.run_id)
        data = snap.to_dict() if snap is not None and snap.exists else None
        step = (data or {}).get("steps", {}).get(run.step_id)
        result[run.run_id] = (step, snap.update_time if snap is not None else None)
    return result


def statuses(db: Any, runs: Sequence[ChaosRun]) -> dict[str, str | None]:
    return {rid: (step or {}).get("status") for rid, (step, _) in steps(db, runs).items()}


def wait_settled(
    db: Any, runs: Sequence[ChaosRun], timeout: float, settled: Iterable[str] = TERMINAL
) -> dict[str, str | None]:
    """Until every step's status is in `settled` (terminal by default)."""
    allowed = set(settled)
    last: dict[str, str | None] = {}

    def probe() -> dict[str, str | None] | None:
        nonlocal last
        last = statuses(db, runs)
        return last if all(s in allowed for s in last.values()) else None

    return wait_for(
        probe,
        timeout,
        lambda: (
            "steps not settled: "
            + ", ".join(f"{rid}={s}" for rid, s in sorted(last.items()) if s not in allowed)
        ),
        interval=0.2,
    )


def objects_in(gcs: Any) -> dict[str, int]:
    """Object name → generation, for the whole bucket."""
    return {blob.name: int(blob.generation or 0) for blob in gcs.list_blobs(BUCKET)}


def artifact(gcs: Any, run: ChaosRun) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(
        gcs.bucket(BUCKET).blob(run.artifact_name).download_as_bytes()
    )
    return data


def replies_by_run(
    records: Sequence[RecordedRequest], script: Sequence[Reply], runs: Sequence[ChaosRun]
) -> dict[str, Reply]:
    """Which scripted reply each run's request got: the stub pairs the n-th request it records
    with the n-th reply, under one lock."""
    owners = [calls_per_run([record], runs).most_common(1)[0][0] for record in records]
    return dict(zip(owners, script, strict=False))


def calls_per_run(records: Iterable[RecordedRequest], runs: Sequence[ChaosRun]) -> Counter[str]:
    """Gemini requests per runId (from the OHLCV `chaosTag`); "?" for unattributable ones."""
    counts: Counter[str] = Counter()
    for record in records:
        text = json.dumps(record.body)
        owners = [run.run_id for run in runs if run.run_id in text]
        counts[owners[0] if len(owners) == 1 else "?"] += 1
    return counts


# --------------------------------------------------------------------------------------
# Deliveries
# --------------------------------------------------------------------------------------


@dataclass
class Deliveries:
    """Direct POSTs of CloudEvents, as Eventarc would make them; outcomes counted by status."""

    timeout: float = 60.0
    outcomes: Counter[str] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def total(self) -> int:
        with self._lock:
            return sum(self.outcomes.values())

    def post(self, url: str, event: tuple[dict[str, str], bytes]) -> int | None:
        """One POST; a dropped connection (the instance was killed) is `None`, not an error."""
        headers, body = event
        status: int | None = None
        try:
            status = post_event(url, headers, body, timeout=self.timeout)
            key = str(status)
        except requests.RequestException as exc:
            key = type(exc).__name__
        with self._lock:
            self.outcomes[key] += 1
        return status

    def post_until_ok(
        self, url: str, event: tuple[dict[str, str], bytes], timeout: float
    ) -> list[int | None]:
        """At-least-once delivery: retry with backoff until a 2xx, as Eventarc does."""
        seen: list[int | None] = []
        deadline = time.monotonic() + timeout
        pause = 0.5
        while True:
            status = self.post(url, event)
            seen.append(status)
            if status is not None and 200 <= status < 300:
                return seen
            assert time.monotonic() < deadline, f"no 2xx from {url} after {seen}"
            time.sleep(pause)
            pause = min(pause * 2, 4.0)

    def storm(
        self,
        jobs: Sequence[tuple[str, tuple[dict[str, str], bytes]]],
        *,
        seed: int,
        max_delay: float = 0.0,
        workers: int = 8,
    ) -> list[int | None]:
        """All `jobs` at once in a seeded random order, each after a seeded random delay."""
        rng = random.Random(seed)
        order = list(jobs)
        rng.shuffle(order)
        delays = [rng.uniform(0.0, max_delay) for _ in order]

        def one(index: int) -> int | None:
            time.sleep(delays[index])
            url, event = order[index]
            return self.post(url, event)

        with ThreadPoolExecutor(workers, thread_name_prefix="chaos-post") as pool:
            return list(pool.map(one, range(len(order))))


# --------------------------------------------------------------------------------------
# Watching steps: a terminal step is never rewritten
# --------------------------------------------------------------------------------------


class StepHistory:
    """Every version of each watched step that a Firestore listener reports.

    A status gate that works means: statuses only move forward (READY → RUNNING → terminal),
    the step is claimed once (one `startedAt` while RUNNING), and a terminal step never
    changes again, whatever arrives afterwards.
    """

    def __init__(self, db: Any, runs: Sequence[ChaosRun]) -> None:
        self._db = db
        self._steps = {run.run_id: run.step_id for run in runs}
        self._lock = threading.Lock()
        self._versions: dict[str, list[dict[str, Any] | None]] = {r: [] for r in self._steps}
        self._seen: dict[str, Any] = {}
        self._ready = threading.Event()
        self._watch: Any = None

    def __enter__(self) -> StepHistory:
        self._watch = self._db.collection("flow_runs").on_snapshot(self._on_snapshot)
        assert self._ready.wait(30), "no initial snapshot from the Firestore listener"
        return self

    def __exit__(self, *exc: object) -> None:
        if self._watch is not None:
            with contextlib.suppress(Exception):
                self._watch.unsubscribe()
            self._watch = None

    def _on_snapshot(self, _docs: Any, changes: list[Any], _read_time: Any) -> None:
        try:
            with self._lock:
                for change in changes:
                    doc = change.document
                    if doc.id not in self._steps or change.type.name == "REMOVED":
                        continue
                    step = ((doc.to_dict() or {}).get("steps") or {}).get(self._steps[doc.id])
                    self._versions[doc.id].append(json.loads(json.dumps(step, default=str)))
                    self._seen[doc.id] = doc.update_time
        finally:
            self._ready.set()

    @property
    def versions(self) -> int:
        with self._lock:
            return sum(len(v) for v in self._versions.values())

    def wait_caught_up(self, db: Any, runs: Sequence[ChaosRun], timeout: float = 15.0) -> None:
        """Until the listener has reported each document's current version."""
        current = {rid: ut for rid, (_, ut) in steps(db, runs).items()}

        def behind() -> list[str]:
            with self._lock:
                return [r for r, ut in current.items() if ut and self._seen.get(r) != ut]

        wait_for(lambda: not behind(), timeout, lambda: f"listener behind on {behind()}")

    def violations(self) -> list[str]:
        found = []
        with self._lock:
            for run_id, versions in self._versions.items():
                terminal: dict[str, Any] | None = None
                rank = -1
                claims = {
                    str(((v or {}).get("outputs") or {}).get("execution", {}).get("timing"))
                    for v in versions
                    if (v or {}).get("status") == "RUNNING"
                }
                if len(claims) > 1:
                    found.append(f"{run_id}: claimed {len(claims)} times")
                for version in versions:
                    status = (version or {}).get("status")
                    if terminal is not None:
                        if version != terminal:
                            found.append(f"{run_id}: terminal step rewritten to {status}")
                        continue
                    if status not in RANK or RANK[status] < rank:
                        found.append(f"{run_id}: step moved back to {status}")
                        continue
                    rank = RANK[status]
                    if status in TERMINAL:
                        terminal = version
        return found


def fingerprint(db: Any, runs: Sequence[ChaosRun]) -> dict[str, tuple[str, str]]:
    """runId → (document update_time, the step as JSON): equal means nothing was written."""
    return {
        rid: (str(ut), json.dumps(step, sort_keys=True, default=str))
        for rid, (step, ut) in steps(db, runs).items()
    }


def changed(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    return [f"{rid}: written after it was terminal" for rid in before if before[rid] != after[rid]]


# --------------------------------------------------------------------------------------
# The audit
# --------------------------------------------------------------------------------------


def forbidden_texts(**extra: str) -> dict[str, str]:
    """What must never appear in logs or in Firestore: the key, prompt texts, model replies."""
    texts = {"api key": FAKE_GEMINI_API_KEY}
    prompts = {"contract prompt": load("examples/llm_prompt.example.json")}
    prompts.update({f"prompt {pid}": doc for pid, doc in EXAMPLE.prompts.items()})
    for name, doc in prompts.items():
        texts[f"{name} systemInstruction"] = doc["systemInstruction"][:80]
        texts[f"{name} userPrompt"] = doc["userPrompt"][:80]
    texts.update(extra)
    return texts


def leaks(sources: Mapping[str, str], texts: Mapping[str, str]) -> list[str]:
    """`<source> contains <label>`, matching the raw text and its JSON-escaped forms."""
    found = []
    for label, text in texts.items():
        forms = {text, json.dumps(text)[1:-1], json.dumps(text, ensure_ascii=False)[1:-1]}
        for source, content in sources.items():
            if any(form and form in content for form in forms):
                found.append(f"{source} contains {label}")
    return found


def claims(servers: Iterable[FunctionServer], marks: Iterable[LogMark]) -> Counter[str]:
    """Claim attempts the instances logged since `marks`: `won:<runId>` per run, and `lost`.

    Exactly one won claim per step is the exactly-once proof; lost ones show the races ran.
    """
    counts: Counter[str] = Counter()
    for server, mark in zip(servers, marks, strict=True):
        for record in server.log_json_lines(mark):
            if record.get("event") == "claim_attempt":
                counts[f"won:{record.get('runId')}" if record.get("claimed") else "lost"] += 1
    return counts


# gunicorn's arbiter, on reaping a worker that died of a signal.
SIGKILLED = re.compile(r"Worker \(pid:(\d+)\) was sent SIGKILL")


@dataclass(frozen=True)
class Crasher:
    """A function instance that SIGKILLs itself on entering any hooked state, once per marker.

    engine/faults.py writes each marker with the pid it then kills. Two threads of the instance
    can reach armed states together and die in one kill, so markers and kills are matched by
    process, not counted against each other.
    """

    server: FunctionServer
    once: Path
    hooked: tuple[str, ...]

    @staticmethod
    def env(once: Path, hooked: Sequence[str]) -> dict[str, str]:
        return {"WORKER_TEST_CRASH_AT": ",".join(hooked), "WORKER_TEST_CRASH_ONCE_DIR": str(once)}

    def arm(self, doc_id: str, unit_id: str, *states: str) -> None:
        """Only `states` stay armed for this unit: every other marker is used up in advance."""
        for state in self.hooked:
            if state not in states:
                (self.once / f"{doc_id}.{unit_id}.{state}").touch()

    def markers(self) -> frozenset[str]:
        return frozenset(p.name for p in self.once.iterdir() if not p.name.startswith("."))

    def crashes(self, since: frozenset[str]) -> dict[str, int]:
        """The markers the instance wrote after `since`, each with the pid it killed."""
        return {name: int((self.once / name).read_text()) for name in self.markers() - since}

    def kills(self, mark: LogMark) -> list[int]:
        """The pids gunicorn reports SIGKILLed since `mark`, one per kill."""
        return [int(pid) for pid in SIGKILLED.findall(self.server.log_text(mark))]

    def mismatch(self, since: frozenset[str], mark: LogMark) -> list[str]:
        """Violations unless every crash killed its process and every kill was a crash."""
        crashed, killed = set(self.crashes(since).values()), self.kills(mark)
        if crashed == set(killed) and len(killed) == len(set(killed)):
            return []
        return [f"crash markers name pids {sorted(crashed)} but SIGKILLs hit {sorted(killed)}"]


def log_sources(servers: Iterable[FunctionServer]) -> dict[str, str]:
    return {f"function :{server.port} log": server.log_text() for server in servers}


@dataclass
class Audit:
    violations: list[str]
    statuses: Counter[str]
    codes: Counter[str]
    artifacts: int


def audit(
    db: Any,
    gcs: Any,
    runs: Sequence[ChaosRun],
    *,
    may_run: Iterable[str] = (),
    sources: Mapping[str, str] | None = None,
    texts: Mapping[str, str] | None = None,
) -> Audit:
    """The invariants of SPEC §4-5 over the runs as stored now.

    `may_run`: runIds whose worker was killed between claim and artifact write; only those may
    still be RUNNING, and only without an artifact.
    """
    allowed_running = set(may_run)
    violations: list[str] = []
    seeded = {uri.removeprefix(f"gs://{BUCKET}/") for run in runs for uri in run.objects}
    stored = objects_in(gcs)
    # Objects of these runs only: other scenarios may share the bucket.
    produced = {
        name for name in stored if name not in seeded and any(run.run_id in name for run in runs)
    }
    by_run = {run.run_id: run for run in runs}
    for name in sorted(produced):
        owner = by_run.get(name.split("/", 1)[0])
        if owner is None or name != owner.artifact_name:
            violations.append(f"unexpected object gs://{BUCKET}/{name}")
    stored_steps = steps(db, runs)
    status_counts: Counter[str] = Counter()
    codes: Counter[str] = Counter()
    for run in runs:
        step, _ = stored_steps[run.run_id]
        status = (step or {}).get("status")
        status_counts[str(status)] += 1
        has_artifact = run.artifact_name in stored
        if status == "SUCCEEDED":
            if not has_artifact:
                violations.append(f"{run.run_id}: SUCCEEDED without its artifact")
            else:
                meta = artifact(gcs, run).get("metadata") or {}
                if (meta.get("runId"), meta.get("stepId")) != (run.run_id, run.step_id):
                    violations.append(f"{run.run_id}: its artifact names {meta.get('runId')}")
            uri = (step or {}).get("outputs", {}).get("gcs_uri")
            if uri != run.artifact_uri:
                violations.append(f"{run.run_id}: outputs.gcs_uri is {uri!r}")
        elif status == "FAILED":
            code = ((step or {}).get("error") or {}).get("code")
            codes[str(code)] += 1
            if code not in CODES:
                violations.append(f"{run.run_id}: FAILED with uncatalogued code {code!r}")
            if has_artifact:
                violations.append(f"{run.run_id}: FAILED but its artifact exists (orphan)")
        elif status == "RUNNING":
            if run.run_id not in allowed_running:
                violations.append(f"{run.run_id}: RUNNING without a killed worker")
            elif has_artifact:
                violations.append(f"{run.run_id}: RUNNING with its artifact (not recovered)")
        else:
            violations.append(f"{run.run_id}: step is {status}, never executed")
    firestore_text = json.dumps(
        {rid: step for rid, (step, _) in stored_steps.items()}, default=str, ensure_ascii=False
    )
    all_sources = {"firestore steps": firestore_text, **(sources or {})}
    violations += leaks(all_sources, texts or forbidden_texts())
    return Audit(violations, status_counts, codes, len(produced))


def figures(scenario: str, **counts: object) -> str:
    """The one line CI reads: `chaos: scenario=... runs=... violations=...`."""
    return "chaos: " + " ".join([f"scenario={scenario}", *(f"{k}={v}" for k, v in counts.items())])


# --------------------------------------------------------------------------------------
# Stale-step recovery, in process
# --------------------------------------------------------------------------------------


class NoModel:
    """Recovery must never call the model; every call is counted and refused."""

    def __init__(self) -> None:
        self.calls = 0

    def generate(self, request: LLMRequest, timeout_s: float) -> LLMResponse:
        self.calls += 1
        raise AssertionError("stale recovery called the model")


def recovery_worker(db: Any, gcs: Any) -> tuple[Runner[Any, Any, Any], NoModel, io.StringIO]:
    """The scheduler job's worker (`recover_stale_steps`) wired to the test's own clients."""
    model = NoModel()
    sink = io.StringIO()
    runner = compose.build(
        "llm_client",
        {"ARTIFACTS_BUCKET": BUCKET, "GEMINI_API_KEY": FAKE_GEMINI_API_KEY, "ENV": "chaos"},
        stream=sink,
        store=FirestoreDocumentStore(None, "(default)", given=db),
        registry=PromptSchemaRegistry(
            FirestoreRegistry(None, "(default)", given=db), "llm_prompts", "llm_schemas"
        ),
        blobs=GcsBlobStore(given=gcs),
        llm=model,
    )
    return runner, model, sink


# --------------------------------------------------------------------------------------
# Clients for dedicated (restartable) emulators
# --------------------------------------------------------------------------------------


def firestore_client(host: str) -> gcf.Client:
    """A client bound to one emulator host (the library reads the variable at construction)."""
    with _env("FIRESTORE_EMULATOR_HOST", host):
        return gcf.Client(project=PROJECT)


def storage_client(endpoint: str) -> storage.Client:
    with _env("STORAGE_EMULATOR_HOST", endpoint):
        return storage.Client(project=PROJECT, credentials=AnonymousCredentials())


@contextlib.contextmanager
def _env(name: str, value: str) -> Iterator[None]:
    previous = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = previous


REGISTRIES = ("flow_runs", "llm_prompts", "llm_schemas")


class Outages:
    """A Firestore emulator and a fake-gcs of one test's own, killed and brought back on the same
    ports, so the function under test keeps its environment across the outage.

    Both are in-memory. The Firestore emulator jar can export over HTTP and `--import-data` at
    start, but `FirestoreEmulator` takes no extra flags; the documents read just before the kill
    are written back instead, which is the same data the export would hold. fake-gcs comes back
    empty unless runs are given to re-seed (bucket and inputs).
    """

    def __init__(self, log_dir: Any) -> None:
        self.log_dir = log_dir
        self.firestore = FirestoreEmulator(project=PROJECT, log_dir=log_dir).start()
        try:
            self.gcs = FakeGcs(log_dir=log_dir).start()
        except Exception:
            self.firestore.stop()
            raise
        self.db = firestore_client(self.firestore.host)
        self.storage = storage_client(self.gcs.endpoint)

    @property
    def env(self) -> dict[str, str]:
        return {
            "FIRESTORE_EMULATOR_HOST": self.firestore.host,
            "STORAGE_EMULATOR_HOST": self.gcs.endpoint,
        }

    def kill_firestore(self) -> dict[tuple[str, str], dict[str, Any]]:
        """Reads every document, then kills the emulator; returns what it held."""
        held = {
            (name, snap.id): snap.to_dict() or {}
            for name in REGISTRIES
            for snap in self.db.collection(name).stream()
        }
        self.db.close()
        self.firestore.stop()
        return held

    def start_firestore(self, held: Mapping[tuple[str, str], dict[str, Any]]) -> None:
        self.firestore = FirestoreEmulator(
            project=PROJECT, port=self.firestore.port, log_dir=self.log_dir
        ).start()
        self.db = firestore_client(self.firestore.host)  # a fresh channel, no reconnect backoff
        for (name, doc_id), data in held.items():
            self.db.collection(name).document(doc_id).set(data)

    def kill_gcs(self) -> None:
        self.storage.close()
        self.gcs.stop()

    def start_gcs(self, runs: Sequence[ChaosRun] = ()) -> None:
        self.gcs = FakeGcs(port=self.gcs.port, log_dir=self.log_dir).start()
        self.storage = storage_client(self.gcs.endpoint)
        if runs:
            seed_objects(self.storage, runs)

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.db.close()
        with contextlib.suppress(Exception):
            self.storage.close()
        self.gcs.stop()
        self.firestore.stop()

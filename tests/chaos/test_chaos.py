"""Chaos suite: the worker's exactly-once promises under duplicates, crashes and outages.

Real local services throughout: the Firestore emulator, fake-gcs-server, the Gemini stub and
several functions-framework processes. Each scenario injects its faults, waits (bounded) until
every step settles, audits the invariants of SPEC §4-5 and prints one `chaos: ...` figures line
for CI. Randomness is seeded and the assertions hold whatever the timing.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import random
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from adapters.gcs import UPLOAD_TIMEOUT_S
from devstack.bridge import EventBridge
from devstack.fault_proxy import Fault, FaultProxy
from devstack.gemini_stub import Reply, error, ok
from devstack.services import FunctionServer, LogMark
from tests.chaos.harness import (
    BUCKET,
    ChaosRun,
    Crasher,
    Deliveries,
    Outages,
    StepHistory,
    artifact,
    audit,
    calls_per_run,
    changed,
    claims,
    figures,
    fingerprint,
    forbidden_texts,
    log_sources,
    make_runs,
    objects_in,
    recovery_worker,
    replies_by_run,
    reply_text,
    report_reply,
    seed_objects,
    seed_registries,
    seed_runs,
    statuses,
    steps,
    storage_client,
    wait_for,
    wait_settled,
)
from tests.conftest import PROJECT
from tests.contracts import load

SEED = 20260101
# Short enough that a "slow" stub reply (6 s) is a Gemini timeout, long enough for the rest.
BASE_ENV = {"ARTIFACTS_BUCKET": BUCKET, "GEMINI_TIMEOUT_SECONDS": "4"}
INSTANCES = ("chaos-a", "chaos-b", "chaos-c")
EXPECTED_CODE = {429: "RATE_LIMITED", 503: "GEMINI_REQUEST_FAILED"}


@pytest.fixture(scope="module")
def servers(function_server_factory) -> list[FunctionServer]:
    """Three instances of the function: events for one run land on all of them."""
    return [function_server_factory({**BASE_ENV, "INSTANCE": name}) for name in INSTANCES]


def show(capsys: pytest.CaptureFixture[str], line: str) -> None:
    """Figures go straight to the terminal, captured or not: CI greps them."""
    with capsys.disabled():
        print(f"\n{line}", flush=True)


def verdict(violations: list[str]) -> str:
    return f"{len(violations)} invariant violation(s):\n  " + "\n  ".join(violations)


def replay_jobs(runs: list[ChaosRun], urls: list[str]) -> list[tuple[str, Any]]:
    """Stale redeliveries: each run's READY version again, to every instance."""
    return [(url, run.event()) for run in runs for url in urls]


@dataclass(frozen=True)
class Replayed:
    """What stale redeliveries did once every run had settled: nothing, or `violations`."""

    violations: list[str]
    deliveries: int
    then: Any  # what the step run between the replays and the second fingerprint returned


def replay_stale(
    db: Any,
    runs: list[ChaosRun],
    urls: list[str],
    *,
    history: StepHistory | None = None,
    then: Callable[[], Any] = lambda: None,
    max_delay: float = 0.3,
) -> Replayed:
    """Every run's READY event again to every instance in a seeded storm, then `then` (a
    second stale-recovery scan, say): no document may change and every replay answers 200."""
    before = fingerprint(db, runs)
    replays = Deliveries()
    answers = replays.storm(replay_jobs(runs, urls), seed=SEED, max_delay=max_delay)
    after_replays = then()
    if history is not None:
        history.wait_caught_up(db, runs)
    violations = changed(before, fingerprint(db, runs))
    violations += [f"stale replay answered {s}" for s in answers if s != 200]
    return Replayed(violations, replays.total, after_replays)


# --------------------------------------------------------------------------------------
# 1. Many flow runs, racing instances, every event three times, delayed and reordered
# --------------------------------------------------------------------------------------


def test_many_runs_with_duplicated_delayed_reordered_events(
    firestore, gcs, gemini, servers, capsys
):
    started = time.monotonic()
    runs = make_runs("mr", 8)
    seed_registries(firestore)
    seed_objects(gcs, runs)
    markers = [f"chaos many-runs reply {i}: model text never logged" for i in range(6)]
    script = (
        error(429, "RESOURCE_EXHAUSTED", "Quota exceeded for chaos"),
        report_reply(markers[0], delay=0.8),
        error(503, "UNAVAILABLE", "The model is overloaded"),
        report_reply(markers[1]),
        report_reply(markers[2], delay=0.4),
        report_reply(markers[3]),
        report_reply(markers[4], delay=1.2),
        report_reply(markers[5]),
    )
    gemini.script(*script)
    gemini_faults = 5  # two error replies, three slow ones
    urls = [s.url for s in servers]
    marks = [s.mark() for s in servers]

    with StepHistory(firestore, runs) as history:
        with EventBridge(
            db=firestore,
            function_urls=urls,
            project=PROJECT,
            duplicate=3,
            delay=0.5,
            reorder_window=8,
            seed=SEED,
            workers=12,
        ) as bridge:
            seed_runs(firestore, runs)  # ADDED: the orchestrator creates runs with READY steps
            wait_settled(firestore, runs, timeout=120)
            history.wait_caught_up(firestore, runs)
            final = steps(firestore, runs)
            wait_for(
                lambda: all(
                    (seen := bridge.last_seen(rid)) is not None and seen >= ut
                    for rid, (_, ut) in final.items()
                ),
                15,
                lambda: "the bridge's listener never reported the final writes",
            )
            assert bridge.wait_idle(timeout=60, quiet=0.5), "bridge deliveries never drained"
        stats = bridge.stats

        replayed = replay_stale(firestore, runs, urls, history=history)

    texts = forbidden_texts(**{f"reply {i}": m for i, m in enumerate(markers)})
    result = audit(firestore, gcs, runs, sources=log_sources(servers), texts=texts)
    per_run = calls_per_run(gemini.requests, runs)
    violations = result.violations + history.violations() + replayed.violations
    violations += [f"{rid}: {n} Gemini calls" for rid, n in per_run.items() if n != 1]
    # Each run's outcome is the reply its own request got: no cross-talk between executions.
    got = replies_by_run(gemini.requests, script, runs)
    final = steps(firestore, runs)
    for run in runs:
        step, reply = final[run.run_id][0] or {}, got.get(run.run_id)
        if reply is None:
            continue  # already reported as a wrong call count
        if reply.status == 200:
            stored = artifact(gcs, run) if step.get("status") == "SUCCEEDED" else {}
            if stored.get("output") != json.loads(reply_text(reply)):
                violations.append(f"{run.run_id}: artifact is not the reply to its request")
        elif (step.get("error") or {}).get("code") != EXPECTED_CODE[reply.status]:
            violations.append(f"{run.run_id}: got a {reply.status} but ended {step.get('error')}")
    claimed = claims(servers, marks)
    violations += [
        f"{run.run_id}: claimed {claimed[f'won:{run.run_id}']} times"
        for run in runs
        if claimed[f"won:{run.run_id}"] != 1
    ]
    if stats.gave_up:
        violations.append(f"bridge gave up on {stats.gave_up} deliveries")

    show(
        capsys,
        figures(
            "many_runs",
            runs=len(runs),
            deliveries=stats.deliveries + replayed.deliveries,
            crashes=0,
            faults=gemini_faults,
            violations=len(violations),
            instances=len(servers),
            events=stats.events_seen,
            claims_lost=claimed["lost"],
            gemini_calls=len(gemini.requests),
            succeeded=result.statuses["SUCCEEDED"],
            failed=result.statuses["FAILED"],
            artifacts=result.artifacts,
            step_versions=history.versions,
            seconds=f"{time.monotonic() - started:.1f}",
        ),
    )
    assert not violations, verdict(violations)
    # One Gemini call per step, whatever the duplicates: the scripted outcomes, exactly.
    assert len(gemini.requests) == len(runs)
    assert result.statuses == Counter({"SUCCEEDED": 6, "FAILED": 2})
    assert result.codes == Counter({"RATE_LIMITED": 1, "GEMINI_REQUEST_FAILED": 1})
    assert stats.delivered == 3 * stats.events_seen


# --------------------------------------------------------------------------------------
# 2. An instance killed on entering each lifecycle state, then redelivery and stale recovery
# --------------------------------------------------------------------------------------

CRASH_STATES = (
    "RUNNING_claim",
    "RUNNING_resolve",
    "RUNNING_assemble",
    "RUNNING_generate",
    "RUNNING_validate",
    "RUNNING_write",
    "RUNNING_finalize",
)
# Killed after the claim and before the artifact write: left RUNNING for stale recovery.
KILLED_BEFORE_WRITE = frozenset(CRASH_STATES[1:6])
# Gemini calls of the whole attempt chain: none before generate, one after; a claim crash leaves
# the step READY and the redelivery's full execution makes the one call.
EXPECTED_CALLS = {state: 0 if state in CRASH_STATES[1:4] else 1 for state in CRASH_STATES}


HOOKED = (*CRASH_STATES, "RUNNING_adopt")


@pytest.fixture(scope="module")
def crasher(function_server_factory, tmp_path_factory) -> Crasher:
    once = tmp_path_factory.mktemp("crash-once")
    env = {**BASE_ENV, "INSTANCE": "chaos-crash", **Crasher.env(once, HOOKED)}
    return Crasher(function_server_factory(env), once, HOOKED)


def test_crash_on_entering_each_state_then_redelivery_and_stale_recovery(
    firestore, gcs, gemini, servers, crasher, capsys
):
    started = time.monotonic()
    crash = crasher.server
    runs = make_runs("cr", len(CRASH_STATES))
    target = {run.run_id: state for run, state in zip(runs, CRASH_STATES, strict=True)}
    # One process hooks every state; used-up markers steer each run to crash at its own state
    # only. The finalize run also crashes once more, on entering recover, on its redelivery.
    for run in runs:
        state = target[run.run_id]
        also = ["RUNNING_adopt"] if state == "RUNNING_finalize" else []
        crasher.arm(run.run_id, run.step_id, state, *also)
    armed_before = crasher.markers()
    seed_registries(firestore)
    seed_objects(gcs, runs)
    marker = "chaos crash reply: model text never logged"
    gemini.set_default(report_reply(marker))
    seed_runs(firestore, runs)
    log_mark = crash.mark()

    deliveries = Deliveries()
    first: dict[str, int | None] = {}
    with StepHistory(firestore, runs) as history:
        for run in runs:
            # The first delivery kills the instance; gunicorn replaces its worker, the event is
            # delivered again to it and to a healthy instance (at least once, any instance).
            plan = [crash.url, crash.url, servers[0].url, crash.url]
            outcomes = [deliveries.post(url, run.event()) for url in plan]
            first[run.run_id] = outcomes[0]
        expected_running = {r.run_id for r in runs if target[r.run_id] in KILLED_BEFORE_WRITE}
        wait_settled(firestore, runs, timeout=30, settled=("SUCCEEDED", "FAILED", "RUNNING"))
        history.wait_caught_up(firestore, runs)
        mid = audit(firestore, gcs, runs, may_run=expected_running)
        running_before = {rid for rid, s in statuses(firestore, runs).items() if s == "RUNNING"}
        per_run = calls_per_run(gemini.requests, runs)

        worker, model, recovery_log = recovery_worker(firestore, gcs)
        summary = worker.scan(0.001)  # any claim is older than this lease
        history.wait_caught_up(firestore, runs)

        urls = [crash.url, *(s.url for s in servers)]
        replayed = replay_stale(
            firestore, runs, urls, history=history, then=lambda: worker.scan(0.001)
        )
        again = replayed.then

    crashes = len(crasher.crashes(armed_before))
    sigkills = len(crasher.kills(log_mark))
    sources = {**log_sources([crash, *servers]), "recovery log": recovery_log.getvalue()}
    result = audit(firestore, gcs, runs, sources=sources, texts=forbidden_texts(reply=marker))
    final = steps(firestore, runs)
    violations = mid.violations + result.violations + history.violations()
    violations += replayed.violations + crasher.mismatch(armed_before, log_mark)
    if running_before != expected_running:
        violations.append(f"RUNNING before recovery: {sorted(running_before)}")
    for run in runs:
        state = target[run.run_id]
        if per_run[run.run_id] != EXPECTED_CALLS[state]:
            violations.append(f"{state}: {per_run[run.run_id]} Gemini calls")
        answered = first[run.run_id]
        if answered is not None and answered < 500:
            violations.append(f"{state}: the crashed delivery answered {answered}")
        step, _ = final[run.run_id]
        code = ((step or {}).get("error") or {}).get("code")
        if state in KILLED_BEFORE_WRITE and code != "STEP_LEASE_EXPIRED":
            violations.append(f"{state}: ended {step and step.get('status')} {code}")
        if state not in KILLED_BEFORE_WRITE and (step or {}).get("status") != "SUCCEEDED":
            violations.append(f"{state}: ended {step and step.get('status')} {code}")
    execution = (final[runs[-1].run_id][0] or {}).get("outputs", {}).get("execution", {})
    if execution.get("reused") is not True:
        violations.append("the finalize crash was not recovered from its artifact")
    if model.calls:
        violations.append(f"stale recovery called the model {model.calls} times")

    show(
        capsys,
        figures(
            "crash_each_state",
            runs=len(runs),
            deliveries=deliveries.total + replayed.deliveries,
            crashes=crashes,
            faults=crashes,
            violations=len(violations),
            sigkills=sigkills,
            gemini_calls=len(gemini.requests),
            running_before_recovery=len(running_before),
            lease_expired=summary["expired"],
            succeeded=result.statuses["SUCCEEDED"],
            failed=result.statuses["FAILED"],
            artifacts=result.artifacts,
            seconds=f"{time.monotonic() - started:.1f}",
        ),
    )
    assert not violations, verdict(violations)
    assert crashes == sigkills == len(CRASH_STATES) + 1  # + the recover crash of the finalize run
    assert summary == {
        "runsScanned": len(runs),
        "stale": 5,
        "recovered": 0,
        "expired": 5,
        "probeFailed": 0,
    }
    assert again == {
        "runsScanned": len(runs),
        "stale": 0,
        "recovered": 0,
        "expired": 0,
        "probeFailed": 0,
    }
    assert result.statuses == Counter({"SUCCEEDED": 2, "FAILED": 5})


def cut_short(server: FunctionServer, mark: LogMark) -> set[str]:
    """runIds of events this instance received more often than it finished: invocations a
    SIGKILL cut short (its own crash or a neighbour thread's), at whatever point they were.

    Counted per event id because redelivered copies share it (as Eventarc's do).
    """
    received: Counter[str] = Counter()
    finished: Counter[str] = Counter()
    run_of: dict[str, str] = {}
    for record in server.log_json_lines(mark):
        event_id = str(record.get("eventId"))
        if record.get("runId"):
            run_of[event_id] = str(record["runId"])
        if record.get("event") == "cloud_event_received":
            received[event_id] += 1
        elif record.get("event") == "cloud_event_finished":
            finished[event_id] += 1
    return {run_of[e] for e, n in received.items() if n > finished[e] and e in run_of}


STAGGER = 1.0


def test_crashes_under_concurrent_load(firestore, gcs, gemini, servers, crasher, capsys):
    """Crashes amid racing deliveries: a SIGKILL also takes down every other request the
    instance was serving, at an arbitrary point. Eventarc (the bridge) retries the dropped
    deliveries elsewhere; whatever was cut between claim and write is left to stale recovery."""
    started = time.monotonic()
    runs = make_runs("cs", len(CRASH_STATES) + 1)
    plan: list[str | None] = [*CRASH_STATES, None]
    random.Random(SEED).shuffle(plan)
    target = {run.run_id: state for run, state in zip(runs, plan, strict=True)}
    for run in runs:
        crasher.arm(run.run_id, run.step_id, *filter(None, [target[run.run_id]]))
    armed_before = crasher.markers()
    seed_registries(firestore)
    seed_objects(gcs, runs)
    marker = "chaos crash-storm reply: model text never logged"
    gemini.set_default(report_reply(marker, delay=0.3))
    # Two deliveries in three go to the crashing instance.
    crash = crasher.server.url
    urls = [crash, servers[0].url, crash, crash, servers[1].url, crash]
    mark = crasher.server.mark()

    with StepHistory(firestore, runs) as history:
        with EventBridge(
            db=firestore,
            function_urls=urls,
            project=PROJECT,
            duplicate=2,
            delay=0.3,
            reorder_window=4,
            seed=SEED,
            retries=5,
            backoff=0.5,
            workers=12,
        ) as bridge:
            for run in runs:  # staggered, so the instance lives through several crashes
                seed_runs(firestore, [run])
                time.sleep(STAGGER)
            wait_settled(firestore, runs, timeout=90, settled=("SUCCEEDED", "FAILED", "RUNNING"))
            assert bridge.wait_idle(timeout=120, quiet=1.5), "bridge deliveries never drained"
        stats = bridge.stats
        history.wait_caught_up(firestore, runs)
        killed = cut_short(crasher.server, mark)
        running = {rid for rid, s in statuses(firestore, runs).items() if s == "RUNNING"}
        worker, model, recovery_log = recovery_worker(firestore, gcs)
        summary = worker.scan(0.001)
        history.wait_caught_up(firestore, runs)
        replayed = replay_stale(firestore, runs, urls, history=history)

    crashes = len(crasher.crashes(armed_before))
    sources = {**log_sources([crasher.server, *servers]), "recovery log": recovery_log.getvalue()}
    result = audit(firestore, gcs, runs, sources=sources, texts=forbidden_texts(reply=marker))
    per_run = calls_per_run(gemini.requests, runs)
    violations = result.violations + history.violations() + replayed.violations
    violations += [
        f"{rid}: RUNNING but no execution was killed" for rid in sorted(running - killed)
    ]
    violations += [f"{rid}: {n} Gemini calls" for rid, n in per_run.items() if n > 1]
    violations += crasher.mismatch(armed_before, mark)
    if stats.gave_up:
        violations.append(f"bridge gave up on {stats.gave_up} deliveries")
    if model.calls:
        violations.append(f"stale recovery called the model {model.calls} times")

    show(
        capsys,
        figures(
            "crash_storm",
            runs=len(runs),
            deliveries=stats.deliveries + replayed.deliveries,
            crashes=crashes,
            faults=crashes,
            violations=len(violations),
            dropped=stats.by_status.get("error", 0),
            cut_short=len(killed),
            running_before_recovery=len(running),
            lease_expired=summary["expired"],
            recovered_by_scan=summary["recovered"],
            gemini_calls=len(gemini.requests),
            succeeded=result.statuses["SUCCEEDED"],
            failed=result.statuses["FAILED"],
            seconds=f"{time.monotonic() - started:.1f}",
        ),
    )
    assert not violations, verdict(violations)


# --------------------------------------------------------------------------------------
# 3a. Gemini faults: rate limits, 5xx, timeouts, malformed output; no retry loop
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GeminiCase:
    name: str
    replies: tuple[Reply, ...]
    status: str
    code: str | None
    calls: int  # the first call, plus the single repair for malformed output


NOT_JSON = "chaos not-json reply: ```markdown``` never logged"
GEMINI_CASES = (
    GeminiCase(
        "rate_limited", (error(429, "RESOURCE_EXHAUSTED", "Quota"),), "FAILED", "RATE_LIMITED", 1
    ),
    GeminiCase(
        "unavailable",
        (error(503, "UNAVAILABLE", "Overloaded"),),
        "FAILED",
        "GEMINI_REQUEST_FAILED",
        1,
    ),
    GeminiCase(
        "internal", (error(500, "INTERNAL", "Internal"),), "FAILED", "GEMINI_REQUEST_FAILED", 1
    ),
    # Slower than GEMINI_TIMEOUT_SECONDS: the SDK call times out.
    GeminiCase(
        "timeout",
        (report_reply("chaos late reply never logged", delay=6.0),),
        "FAILED",
        "GEMINI_REQUEST_FAILED",
        1,
    ),
    GeminiCase(
        "slow_ok", (report_reply("chaos slow reply never logged", delay=1.5),), "SUCCEEDED", None, 1
    ),
    GeminiCase(
        "repaired",
        (ok(NOT_JSON), report_reply("chaos repaired reply never logged")),
        "SUCCEEDED",
        None,
        2,
    ),
    GeminiCase(
        "invalid_twice",
        (ok(NOT_JSON), ok('{"summary": {}}')),
        "FAILED",
        "INVALID_STRUCTURED_OUTPUT",
        2,
    ),
)


def reply_texts(replies: Iterable[Reply], label: str) -> dict[str, str]:
    """The candidate texts of successful replies: model output, never to be logged."""
    return {
        f"{label} reply {i}": reply_text(reply)
        for i, reply in enumerate(replies)
        if reply.status == 200
    }


def test_gemini_faults_fail_the_step_once_without_a_retry_loop(
    firestore, gcs, gemini, servers, capsys
):
    started = time.monotonic()
    runs = make_runs("gf", len(GEMINI_CASES))
    seed_registries(firestore)
    seed_objects(gcs, runs)
    seed_runs(firestore, runs)
    urls = [s.url for s in servers]
    deliveries = Deliveries()
    violations: list[str] = []
    with StepHistory(firestore, runs) as history:
        # One case at a time, so each run consumes exactly its own scripted replies; its event
        # reaches all three instances at once and only one claim may win.
        for index, (run, case) in enumerate(zip(runs, GEMINI_CASES, strict=True)):
            gemini.script(*case.replies)
            deliveries.storm([(url, run.event()) for url in urls], seed=SEED + index)
            wait_settled(firestore, [run], timeout=30)
            if gemini.pending:
                violations.append(f"{case.name}: {gemini.pending} scripted replies never asked for")
        history.wait_caught_up(firestore, runs)
        replayed = replay_stale(firestore, runs, urls, history=history)

    texts = forbidden_texts()
    for case in GEMINI_CASES:
        texts.update(reply_texts(case.replies, case.name))
    result = audit(firestore, gcs, runs, sources=log_sources(servers), texts=texts)
    per_run = calls_per_run(gemini.requests, runs)
    final = steps(firestore, runs)
    violations += result.violations + history.violations() + replayed.violations
    for run, case in zip(runs, GEMINI_CASES, strict=True):
        step = final[run.run_id][0] or {}
        got = (step.get("status"), (step.get("error") or {}).get("code"))
        if got != (case.status, case.code):
            violations.append(f"{case.name}: ended {got}, expected {(case.status, case.code)}")
        if per_run[run.run_id] != case.calls:
            violations.append(f"{case.name}: {per_run[run.run_id]} Gemini calls, not {case.calls}")
    violations += [f"delivery answered {k}" for k in deliveries.outcomes if k != "200"]

    show(
        capsys,
        figures(
            "gemini_faults",
            runs=len(runs),
            deliveries=deliveries.total + replayed.deliveries,
            crashes=0,
            faults=len(GEMINI_CASES),
            violations=len(violations),
            gemini_calls=len(gemini.requests),
            succeeded=result.statuses["SUCCEEDED"],
            failed=result.statuses["FAILED"],
            codes=",".join(f"{c}:{n}" for c, n in sorted(result.codes.items())),
            seconds=f"{time.monotonic() - started:.1f}",
        ),
    )
    assert not violations, verdict(violations)


# --------------------------------------------------------------------------------------
# 3b. Storage and Firestore outages while a step is in flight
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def outages(tmp_path_factory) -> Iterator[Outages]:
    """A Firestore emulator and a fake-gcs of this module's own, to kill and bring back."""
    services = Outages(tmp_path_factory.mktemp("outages"))
    try:
        yield services
    finally:
        services.stop()


@pytest.fixture(scope="module")
def outage_server(outages, function_server_factory) -> FunctionServer:
    """An instance bound to the restartable services; model calls may take 30 s here."""
    env = {**BASE_ENV, "INSTANCE": "chaos-outage", "GEMINI_TIMEOUT_SECONDS": "30"}
    server: FunctionServer = function_server_factory({**env, **outages.env})
    return server


@pytest.fixture
def pool() -> Iterator[concurrent.futures.ThreadPoolExecutor]:
    with concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix="chaos-inflight") as executor:
        yield executor


def begin(
    pool: concurrent.futures.ThreadPoolExecutor,
    deliveries: Deliveries,
    server: FunctionServer,
    gemini,
    run: ChaosRun,
    reply: Reply,
) -> concurrent.futures.Future[int | None]:
    """Delivers the run's event in the background; returns once its model call is under way."""
    gemini.script(reply)
    future = pool.submit(deliveries.post, server.url, run.event())
    wait_for(
        lambda: calls_per_run(gemini.requests, [run])[run.run_id],
        60,
        lambda: f"{run.run_id} never called Gemini",
    )
    return future


def logged(server: FunctionServer, mark: LogMark, run: ChaosRun, event: str) -> bool:
    return any(
        rec.get("event") == event and rec.get("runId") == run.run_id
        for rec in server.log_json_lines(mark)
    )


def redeliver_after_restart(
    deliveries: Deliveries, server: FunctionServer, outages: Outages, run: ChaosRun
) -> list[int | None]:
    """The event Eventarc sends for the write that restored the document after the restart."""
    held = outages.db.collection("flow_runs").document(run.run_id).get().to_dict()
    return deliveries.post_until_ok(server.url, run.event(held), timeout=90)


@dataclass
class Settled:
    violations: list[str]
    steps: dict[str, dict[str, Any]]
    replays: int


def settle_and_audit(
    name: str,
    outages: Outages,
    server: FunctionServer,
    gemini,
    runs: list[ChaosRun],
    texts: dict[str, str],
) -> Settled:
    """Stale replays and a stale-recovery scan must change nothing; then the audit."""
    db, storage = outages.db, outages.storage
    worker, model, recovery_log = recovery_worker(db, storage)
    replayed = replay_stale(
        db, runs, [server.url] * 3, then=lambda: worker.scan(0.001), max_delay=0.0
    )
    summary = replayed.then
    sources = {**log_sources([server]), "recovery log": recovery_log.getvalue()}
    result = audit(db, storage, runs, sources=sources, texts=forbidden_texts(**texts))
    violations = result.violations + [f"{name}: {v}" for v in replayed.violations]
    per_run = calls_per_run(gemini.requests, runs)
    violations += [f"{rid}: {n} Gemini calls" for rid, n in per_run.items() if n != 1]
    if summary["stale"] or model.calls:
        violations.append(f"{name}: stale recovery found work after the outage: {summary}")
    final = {rid: step or {} for rid, (step, _) in steps(db, runs).items()}
    return Settled(violations, final, replayed.deliveries)


def ended(step: dict[str, Any]) -> tuple[str | None, str | None]:
    return step.get("status"), (step.get("error") or {}).get("code")


def test_storage_outage_during_the_artifact_write(outages, outage_server, gemini, pool, capsys):
    started = time.monotonic()
    server = outage_server
    runs = make_runs("gs", 2)
    lost, back = runs
    seed_registries(outages.db)
    seed_objects(outages.storage, runs)
    seed_runs(outages.db, runs)
    markers = {run.run_id: f"chaos storage outage reply {i}" for i, run in enumerate(runs)}
    deliveries = Deliveries(timeout=180)

    # Restarted empty while the model answers: the create-only write finds no bucket.
    future = begin(pool, deliveries, server, gemini, lost, report_reply(markers[lost.run_id], 1.5))
    outages.kill_gcs()
    outages.start_gcs()
    lost_status = future.result(timeout=180)
    seed_objects(outages.storage, runs)  # the bucket and inputs come back for the next case

    # Down when the write starts, back (with its bucket) while the client library retries.
    mark = server.mark()
    future = begin(pool, deliveries, server, gemini, back, report_reply(markers[back.run_id], 1.0))
    outages.kill_gcs()
    wait_for(
        lambda: logged(server, mark, back, "gcs_write_started"),
        30,
        lambda: "the artifact write never started",
    )
    time.sleep(1.0)
    outages.start_gcs(runs)
    back_status = future.result(timeout=180)

    texts = {f"reply {rid}": text for rid, text in markers.items()}
    settled = settle_and_audit("storage", outages, server, gemini, runs, texts)
    violations = settled.violations
    outcome = {"lost": ended(settled.steps[lost.run_id]), "back": ended(settled.steps[back.run_id])}
    if outcome["lost"] != ("FAILED", "GCS_WRITE_FAILED"):
        violations.append(f"bucket lost: ended {outcome['lost']}")
    # The retried write lands on the new server, or meets it just before its bucket exists.
    if outcome["back"] not in {("SUCCEEDED", None), ("FAILED", "GCS_WRITE_FAILED")}:
        violations.append(f"storage back: ended {outcome['back']}")
    violations += [f"answered {s}" for s in (lost_status, back_status) if s != 200]

    show(
        capsys,
        figures(
            "storage_outage",
            runs=len(runs),
            deliveries=deliveries.total + settled.replays,
            crashes=0,
            faults=2,
            violations=len(violations),
            gemini_calls=len(gemini.requests),
            bucket_lost=":".join(filter(None, outcome["lost"])),
            storage_back=":".join(filter(None, outcome["back"])),
            seconds=f"{time.monotonic() - started:.1f}",
        ),
    )
    assert not violations, verdict(violations)


def test_firestore_outage_during_the_model_call_and_the_finalize(
    outages, outage_server, gemini, pool, capsys
):
    started = time.monotonic()
    server = outage_server
    runs = make_runs("fs", 2)
    short, across = runs
    seed_registries(outages.db)
    seed_objects(outages.storage, runs)
    seed_runs(outages.db, runs)
    markers = {run.run_id: f"chaos firestore outage reply {i}" for i, run in enumerate(runs)}
    deliveries = Deliveries(timeout=180)
    answers: dict[str, Any] = {}

    # Killed while the model answers, back (documents restored) before the finalize.
    future = begin(pool, deliveries, server, gemini, short, report_reply(markers[short.run_id], 8))
    outages.start_firestore(outages.kill_firestore())
    answers["restore"] = redeliver_after_restart(deliveries, server, outages, short)
    answers["short"] = future.result(timeout=180)

    # Killed while the model answers and still down when the finalize starts; back while the
    # worker's client retries. The restore's own event may adopt the artifact first: either
    # way one finalize wins and the other finds the step final.
    mark = server.mark()
    future = begin(
        pool, deliveries, server, gemini, across, report_reply(markers[across.run_id], 1)
    )
    held = outages.kill_firestore()
    wait_for(
        lambda: logged(server, mark, across, "gcs_write_finished"),
        30,
        lambda: "the artifact write never finished",
    )
    time.sleep(3.0)  # the finalize is now retrying against a dead emulator
    outages.start_firestore(held)
    answers["restore2"] = redeliver_after_restart(deliveries, server, outages, across)
    answers["across"] = future.result(timeout=180)
    if answers["across"] != 200:  # stranded: Eventarc redelivers a failed event
        answers["redelivered"] = deliveries.post_until_ok(server.url, across.event(), timeout=90)

    texts = {f"reply {rid}": text for rid, text in markers.items()}
    settled = settle_and_audit("firestore", outages, server, gemini, runs, texts)
    violations = settled.violations
    for name, run in (("short", short), ("across", across)):
        if ended(settled.steps[run.run_id]) != ("SUCCEEDED", None):
            violations.append(f"{name}: ended {ended(settled.steps[run.run_id])}")
    execution = settled.steps[across.run_id].get("outputs", {}).get("execution", {})
    finalized_by = "recovery" if execution.get("reused") else "worker"

    show(
        capsys,
        figures(
            "firestore_outage",
            runs=len(runs),
            deliveries=deliveries.total + settled.replays,
            crashes=0,
            faults=2,
            violations=len(violations),
            gemini_calls=len(gemini.requests),
            short=f"answered:{answers['short']}",
            across=f"answered:{answers['across']},finalized_by:{finalized_by}",
            seconds=f"{time.monotonic() - started:.1f}",
        ),
    )
    assert not violations, verdict(violations)


def test_firestore_down_through_the_finalize_strands_then_recovers(
    outages, outage_server, gemini, pool, capsys
):
    """The finalize gives up (bounded by its 15 s timeout): the step is stranded RUNNING with
    its artifact, and the delivery after the restart adopts the artifact, no second call."""
    started = time.monotonic()
    server = outage_server
    (run,) = make_runs("fl", 1)
    seed_registries(outages.db)
    seed_objects(outages.storage, [run])
    seed_runs(outages.db, [run])
    marker = "chaos firestore long outage reply"
    deliveries = Deliveries(timeout=180)
    mark = server.mark()
    future = begin(pool, deliveries, server, gemini, run, report_reply(marker, 1))
    held = outages.kill_firestore()
    answer = future.result(timeout=180)
    stranded = run.artifact_name in objects_in(outages.storage)
    outages.start_firestore(held)
    redelivered = redeliver_after_restart(deliveries, server, outages, run)

    settled = settle_and_audit("stranded", outages, server, gemini, [run], {"reply": marker})
    violations = settled.violations
    step = settled.steps[run.run_id]
    if answer == 200 or not stranded:
        violations.append(f"not stranded: answered {answer}")
    if ended(step) != ("SUCCEEDED", None) or not step["outputs"]["execution"].get("reused"):
        violations.append(f"not recovered from its artifact: {ended(step)}")
    finalize_logged = logged(server, mark, run, "step_finalize_failed")
    if not finalize_logged:
        violations.append("the failed finalize was not logged (step_finalize_failed)")

    show(
        capsys,
        figures(
            "firestore_down_through_finalize",
            runs=1,
            deliveries=deliveries.total + settled.replays,
            crashes=0,
            faults=1,
            violations=len(violations),
            answered=answer,
            redelivered=",".join(map(str, redelivered)),
            finalize_failure_logged=int(finalize_logged),
            seconds=f"{time.monotonic() - started:.1f}",
        ),
    )
    assert not violations, verdict(violations)


@pytest.mark.skipif(
    os.environ.get("CHAOS_SLOW") != "1",
    reason="opt-in (CHAOS_SLOW=1): waits out the 60 s upload timeout, a minute of CI time",
)
def test_storage_down_through_the_write_fails_the_step_in_time(
    outages, outage_server, gemini, pool, capsys
):
    """Storage gone for good during the write: GCS_WRITE_FAILED (retryable), and within the
    spec's 60 s upload timeout (not the library's 120 s retry deadline), so the finalize
    keeps its budget."""
    started = time.monotonic()
    server = outage_server
    (run,) = make_runs("gd", 1)
    seed_registries(outages.db)
    seed_objects(outages.storage, [run])
    seed_runs(outages.db, [run])
    marker = "chaos storage long outage reply"
    deliveries = Deliveries(timeout=300)
    mark = server.mark()
    future = begin(pool, deliveries, server, gemini, run, report_reply(marker, 1))
    outages.kill_gcs()
    try:
        wait_for(
            lambda: logged(server, mark, run, "gcs_write_started"),
            30,
            lambda: "the artifact write never started",
        )
        write_started = time.monotonic()
        answer = future.result(timeout=300)
        write_seconds = time.monotonic() - write_started
    finally:
        outages.start_gcs([run])

    settled = settle_and_audit("storage_down", outages, server, gemini, [run], {"reply": marker})
    violations = settled.violations
    if ended(settled.steps[run.run_id]) != ("FAILED", "GCS_WRITE_FAILED"):
        violations.append(f"ended {ended(settled.steps[run.run_id])}")
    if write_seconds > UPLOAD_TIMEOUT_S + 10:
        violations.append(f"the write took {write_seconds:.0f}s (upload timeout 60 s)")

    show(
        capsys,
        figures(
            "storage_down_through_write",
            runs=1,
            deliveries=deliveries.total + settled.replays,
            crashes=0,
            faults=1,
            violations=len(violations),
            answered=answer,
            write_seconds=f"{write_seconds:.1f}",
            seconds=f"{time.monotonic() - started:.1f}",
        ),
    )
    assert not violations, verdict(violations)


# --------------------------------------------------------------------------------------
# 3c. Cloud Storage failing while RUNNING steps are probed (events and stale recovery)
# --------------------------------------------------------------------------------------

# Every probe fails this way while the faults are on: a missing permission for most runs, a
# dropped connection (storage unreachable; the client retries up to the 20 s read timeout)
# for one.
PROBE_RUNS = 6


@pytest.fixture(scope="module")
def probe_proxy(fake_gcs) -> Iterator[FaultProxy]:
    with FaultProxy(fake_gcs.endpoint) as proxy:
        yield proxy


@pytest.fixture(scope="module")
def probe_servers(function_server_factory, probe_proxy) -> list[FunctionServer]:
    env = {**BASE_ENV, "STORAGE_EMULATOR_HOST": probe_proxy.endpoint}
    return [function_server_factory({**env, "INSTANCE": f"chaos-probe-{n}"}) for n in "ab"]


def claimed_long_ago(run: ChaosRun) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(json.dumps(run.doc))
    step = doc["steps"][run.step_id]
    step["status"] = "RUNNING"
    step["outputs"] = {"execution": {"timing": {"startedAt": "2026-01-01T00:00:00.000001Z"}}}
    return doc


def report_of(run: ChaosRun) -> bytes:
    report = load("examples/llm_report_file.example.json")
    report["metadata"].update(runId=run.run_id, stepId=run.step_id, timeframe=run.timeframe)
    return json.dumps(report).encode()


@pytest.mark.parametrize(
    "one_unreachable",
    [
        pytest.param(False, id="refused"),
        pytest.param(
            True,
            id="one_unreachable",
            marks=pytest.mark.skipif(
                os.environ.get("CHAOS_SLOW") != "1",
                reason="opt-in (CHAOS_SLOW=1): waits out the 20 s read retry twice, "
                "half a minute of CI time; the refused variant runs everything else",
            ),
        ),
    ],
)
def test_storage_failing_during_recovery_probes(
    firestore, gcs, gemini, probe_proxy: FaultProxy, probe_servers, capsys, one_unreachable
):
    """RUNNING steps (half of them with their report already written) are probed while Cloud
    Storage fails: every probe ends with one error and writes nothing, events and the stale-step
    scan alike. Once storage is back, recovery ends every step: adopted from its report, or
    failed STEP_LEASE_EXPIRED. Storage refuses every read (403, not retried); with
    `one_unreachable`, one run's reads also lose their connection (retried until the 20 s read
    timeout)."""
    started = time.monotonic()
    runs = make_runs("pf", PROBE_RUNS)
    with_report = {run.run_id for run in runs[::2]}
    seed_registries(firestore)
    seed_objects(gcs, runs)
    for run in runs:
        firestore.collection("flow_runs").document(run.run_id).set(claimed_long_ago(run))
        if run.run_id in with_report:
            gcs.bucket(BUCKET).blob(run.artifact_name).upload_from_string(report_of(run))
    probe_proxy.clear()
    if one_unreachable:
        probe_proxy.inject(Fault(drop=True, method="GET", path=f"/o/{runs[1].run_id}"))
    probe_proxy.inject(Fault(status=403, method="GET", path="/o/20260101-"))
    urls = [s.url for s in probe_servers]
    marks = [s.mark() for s in probe_servers]

    with StepHistory(firestore, runs) as history:
        before = fingerprint(firestore, runs)
        faulted = Deliveries(timeout=60)
        faulted_status = faulted.storm(
            [(url, run.event(claimed_long_ago(run))) for run in runs for url in urls * 2],
            seed=SEED,
        )
        proxied = storage_client(probe_proxy.endpoint)
        worker, model, recovery_log = recovery_worker(firestore, proxied)
        during = worker.scan(0.001)
        history.wait_caught_up(firestore, runs)
        untouched = fingerprint(firestore, runs)
        injected = len(probe_proxy.injected)

        probe_proxy.clear()
        healed = Deliveries(timeout=60)
        healed_status = healed.storm(
            [(url, run.event(claimed_long_ago(run))) for run in runs for url in urls], seed=SEED
        )
        after = worker.scan(0.001)
        history.wait_caught_up(firestore, runs)

    per_invocation = [
        Counter(e.get("eventId") for e in server.log_json_lines(mark))
        for server, mark in zip(probe_servers, marks, strict=True)
    ]
    sources = {**log_sources(probe_servers), "recovery log": recovery_log.getvalue()}
    result = audit(firestore, gcs, runs, sources=sources, texts=forbidden_texts())
    final = steps(firestore, runs)
    violations = result.violations + history.violations()
    violations += [f"during the faults: {v}" for v in changed(before, untouched)]
    violations += [f"faulted delivery answered {s}" for s in faulted_status if s != 200]
    violations += [f"healed delivery answered {s}" for s in healed_status if s != 200]
    loudest = max((n for counts in per_invocation for n in counts.values()), default=0)
    if loudest > 20:
        violations.append(f"an invocation logged {loudest} lines (a loop)")
    probe_errors = sum(
        1
        for server, mark in zip(probe_servers, marks, strict=True)
        for e in server.log_json_lines(mark)
        if e.get("event") == "probe_failed"
    )
    if probe_errors != faulted.total:
        violations.append(f"{probe_errors} probe errors for {faulted.total} faulted deliveries")
    if during["probeFailed"] != len(runs) or during["stale"]:
        violations.append(f"stale scan during the faults: {during}")
    for run in runs:
        status, code = ended(final[run.run_id][0] or {})
        expected = (
            ("SUCCEEDED", None) if run.run_id in with_report else ("FAILED", "STEP_LEASE_EXPIRED")
        )
        if (status, code) != expected:
            violations.append(f"{run.run_id}: ended {status} {code}, expected {expected}")
    if model.calls or gemini.requests:
        violations.append("a probe or a recovery called the model")

    show(
        capsys,
        figures(
            "storage_failing_during_probes",
            faults_kind="403+unreachable" if one_unreachable else "403",
            runs=len(runs),
            deliveries=faulted.total + healed.total,
            crashes=0,
            faults=injected,
            violations=len(violations),
            probe_errors=probe_errors,
            loudest_invocation_lines=loudest,
            recovered=after["recovered"],
            expired=after["expired"],
            seconds=f"{time.monotonic() - started:.1f}",
        ),
    )
    assert not violations, verdict(violations)

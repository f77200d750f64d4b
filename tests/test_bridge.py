"""The event bridge (Eventarc's local stand-in) and `dev up`, end to end on the real emulators.

Writes made with the Firestore client reach the function only through the bridge's listener, as
they would through Eventarc; the worker's own writes (claim, finalize) come back as events too.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import os
import re
import signal
import threading
import time
from collections import Counter, deque
from typing import Any

import pytest
import requests

from devstack import dev_up
from devstack.bridge import EventBridge
from devstack.example import PIPELINE_EXAMPLE, load_example, seed
from devstack.gemini_stub import ok
from tests.conftest import PROJECT

BUCKET = "artifacts-bucket"
EXAMPLE = load_example()
RUN_ID = EXAMPLE.run_id
STEP = "llm_report_1M_month_summary_v1"
ARTIFACT_NAME = f"{RUN_ID}/1M/{STEP}.json"
REPORT = {"summary": {"markdown": "bridge test report"}, "details": {"trend": "up"}}
TERMINAL = ("SUCCEEDED", "FAILED")


def seed_pending(db, gcs) -> None:
    """The shipped example, but with the demo step still PENDING (nothing to do yet)."""
    flow_run = copy.deepcopy(EXAMPLE.flow_run)
    flow_run["steps"][STEP]["status"] = "PENDING"
    seed(dataclasses.replace(EXAMPLE, flow_run=flow_run), db, gcs)


def flip_ready(db) -> None:
    """What the orchestrator does once the step's dependencies succeeded."""
    db.collection("flow_runs").document(RUN_ID).update({f"steps.{STEP}.status": "READY"})


def wait_terminal(db, bridge: EventBridge, timeout: float = 30.0) -> dict[str, Any]:
    """Poll until the step is terminal, then until the bridge has handed over every change."""
    ref = db.collection("flow_runs").document(RUN_ID)
    deadline = time.monotonic() + timeout
    while True:
        snap = ref.get()
        step: dict[str, Any] = snap.to_dict()["steps"][STEP]
        if step["status"] in TERMINAL:
            break
        assert time.monotonic() < deadline, f"step still {step['status']} after {timeout}s"
        time.sleep(0.1)
    while (bridge.last_seen(RUN_ID) or snap.update_time) < snap.update_time:
        assert time.monotonic() < deadline, "the listener never reported the final write"
        time.sleep(0.05)
    assert bridge.wait_idle(timeout=15.0, quiet=0.3)
    final = ref.get()
    assert final.update_time == snap.update_time, "the flow run changed after the step ended"
    return step


def artifacts(gcs) -> list[str]:
    return [blob.name for blob in gcs.list_blobs(BUCKET, prefix=f"{RUN_ID}/1M/{STEP}")]


def test_update_is_delivered_and_step_completes(firestore, gcs, gemini, function_server_factory):
    server = function_server_factory({"ARTIFACTS_BUCKET": BUCKET})
    gemini.set_default(ok(json.dumps(REPORT)))
    seed_pending(firestore, gcs)
    lines: list[str] = []

    with EventBridge(
        db=firestore, function_urls=[server.url], project=PROJECT, log=lines.append
    ) as bridge:
        assert bridge.stats.events_seen == 0  # the seeded flow run was the initial snapshot
        flip_ready(firestore)
        step = wait_terminal(firestore, bridge)

    assert step["status"] == "SUCCEEDED", step.get("error")
    assert step["outputs"]["gcs_uri"] == f"gs://{BUCKET}/{ARTIFACT_NAME}"
    assert artifacts(gcs) == [ARTIFACT_NAME]
    report = json.loads(gcs.bucket(BUCKET).blob(ARTIFACT_NAME).download_as_bytes())
    assert report["output"] == REPORT
    assert len(gemini.requests) == 1

    stats = bridge.stats
    assert stats.events_skipped >= 1
    # READY flip, then the worker's claim and finalize come back as updates it must ignore.
    assert stats.events_seen >= 2
    assert stats.delivered == stats.events_seen
    assert stats.gave_up == 0
    assert set(stats.by_status) == {"200"}
    assert {a.event_type for a in bridge.attempts} == {"google.cloud.firestore.document.v1.updated"}
    assert len(lines) == stats.deliveries
    assert all(f"flow_runs/{RUN_ID}" in line and " 200 " in line for line in lines)
    assert not any("summary" in line or "llm_prompt" in line for line in lines)


def test_duplicates_and_reordering_complete_the_step_once(
    firestore, gcs, gemini, function_server_factory
):
    servers = [
        function_server_factory({"ARTIFACTS_BUCKET": BUCKET}),
        function_server_factory({"ARTIFACTS_BUCKET": BUCKET, "INSTANCE": "b"}),
    ]
    gemini.set_default(ok(json.dumps(REPORT)))
    seed_pending(firestore, gcs)

    with EventBridge(
        db=firestore,
        function_urls=[s.url for s in servers],
        project=PROJECT,
        duplicate=3,
        reorder_window=4,
        seed=7,
    ) as bridge:
        flip_ready(firestore)
        step = wait_terminal(firestore, bridge)

    assert step["status"] == "SUCCEEDED", step.get("error")
    assert len(gemini.requests) == 1
    assert artifacts(gcs) == [ARTIFACT_NAME]

    stats = bridge.stats
    assert stats.gave_up == 0
    assert stats.delivered == 3 * stats.events_seen
    copies = Counter(a.event_id for a in bridge.attempts if a.ok)
    assert set(copies.values()) == {3}  # every event redelivered with the same ce-id
    assert {a.url for a in bridge.attempts} == {s.url for s in servers}


def test_failed_posts_are_retried_until_acknowledged(firestore):
    """At least once: connection errors and 5xx are retried; a 4xx is final."""
    answers: deque[int | Exception] = deque(
        [requests.ConnectionError("refused"), 503, 200, 400, 200]
    )
    lock = threading.Lock()

    def flaky_post(url, headers, body, timeout) -> int:
        with lock:
            answer = answers.popleft()
        if isinstance(answer, Exception):
            raise answer
        return answer

    ref = firestore.collection("flow_runs").document(RUN_ID)
    with EventBridge(
        db=firestore,
        function_urls=["http://127.0.0.1:1/a", "http://127.0.0.1:1/b"],
        project=PROJECT,
        backoff=0.01,
        post=flaky_post,
    ) as bridge:
        ref.set({"status": "RUNNING", "steps": {}})
        assert bridge.wait_idle(timeout=10.0, quiet=0.3)
        ref.update({"status": "FAILED"})
        assert bridge.wait_idle(timeout=10.0, quiet=0.3)

    first, second = bridge.attempts[:3], bridge.attempts[3:]
    assert [a.status for a in first] == [None, 503, 200]
    assert [a.attempt for a in first] == [1, 2, 3]
    assert len({a.event_id for a in first}) == 1
    assert first[0].event_type.endswith(".created")
    assert [a.url[-1] for a in bridge.attempts] == ["a", "b", "a", "b"]  # round-robin
    assert [a.status for a in second] == [400]  # not retried
    stats = bridge.stats
    assert (stats.events_seen, stats.deliveries, stats.delivered) == (2, 4, 1)
    assert (stats.failures, stats.gave_up) == (3, 1)
    assert stats.by_status == {"error": 1, "503": 1, "200": 1, "400": 1}
    assert list(answers) == [200]


@pytest.mark.parametrize(
    ("kind", "heard"),
    [("created", ["set"]), ("updated", ["update"]), ("written", ["set", "update"])],
)
def test_a_trigger_hears_only_its_event_type(firestore, kind, heard):
    """One bridge per trigger: two workers on one collection filter the same changes apart."""
    event_type = f"google.cloud.firestore.document.v1.{kind}"
    posted: list[tuple[str, str]] = []
    lock = threading.Lock()

    def record(url, headers, body, timeout) -> int:
        with lock:
            posted.append((headers["ce-type"], headers["ce-subject"]))
        return 204

    ref = firestore.collection("backtestJobs").document("job-trigger")
    with EventBridge(
        db=firestore,
        function_urls=["http://127.0.0.1:1/f"],
        project=PROJECT,
        collection="backtestJobs",
        event_type=event_type,
        post=record,
    ) as bridge:
        ref.set({"status": "queued"})
        assert bridge.wait_idle(timeout=10.0, quiet=0.3)
        ref.update({"status": "running"})
        assert bridge.wait_idle(timeout=10.0, quiet=0.3)
        ref.delete()
        assert bridge.wait_idle(timeout=10.0, quiet=0.3)

    subject = "documents/backtestJobs/job-trigger"
    assert posted == [(event_type, subject)] * len(heard)
    assert bridge.stats.events_seen == len(heard)
    assert bridge.stats.events_skipped == 3 - len(heard)


def test_a_trigger_type_must_be_a_firestore_document_type(firestore):
    with pytest.raises(ValueError, match="event_type"):
        EventBridge(
            db=firestore,
            function_urls=["http://127.0.0.1:1/f"],
            project=PROJECT,
            event_type="google.cloud.firestore.document.v1.deleted",
        )


def _gone(pid: int, within: float = 10.0) -> bool:
    """The process and its whole group have exited.

    Children killed with their group are reparented and reaped by init a moment after the leader
    was waited for, so on a busy machine the group can outlive `stop` by a little: poll.
    """
    deadline = time.monotonic() + within
    while True:
        alive = False
        for probe in (os.kill, os.killpg):
            try:
                probe(pid, 0)
            except ProcessLookupError:
                continue
            alive = True
        if not alive:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


def test_dev_up_runs_the_pipeline_and_leaves_nothing_behind(tmp_path, capsys):
    """One command: charts rendered, their manifest written, the report made from them, and
    the example backtest job completed, each worker woken only by its own trigger."""
    parser = argparse.ArgumentParser()
    dev_up.add_arguments(parser)
    args = parser.parse_args(
        ["--exit-after-terminal", "--timeout", "90", "--instances", "1", "--log-dir", str(tmp_path)]
    )
    env_before = {
        k: os.environ.get(k) for k in ("FIRESTORE_EMULATOR_HOST", "STORAGE_EMULATOR_HOST")
    }
    sigint_before = signal.getsignal(signal.SIGINT)
    threads_before = set(threading.enumerate())

    assert dev_up.run(args) == 0

    out = capsys.readouterr().out
    run_id = load_example(PIPELINE_EXAMPLE).run_id
    charts = f"gs://{BUCKET}/charts/{run_id}/charts_1M_price_pair_v1"
    assert "(CHART_EXPORT): SUCCEEDED" in out
    assert f"manifest: {charts}/manifest.json" in out
    assert len(re.findall(rf"png: +{re.escape(charts)}/\S+\.png", out)) == 2
    assert f"(LLM_REPORT): SUCCEEDED\n    report:   gs://{BUCKET}/{run_id}/1M/{STEP}.json" in out
    assert "gemini stub: 1 request(s), 2 chart image(s) attached" in out
    assert "chart-img stub: 2 request(s) {'dev-account': 2}, over limit 0" in out
    assert "backtestJobs/example-wheel-demo: completed" in out
    assert re.search(
        r"return [+-]\d+\.\d\d %, max drawdown .*, cycles \d+, sha256 [0-9a-f]{16}", out
    )
    for worker in ("llm-client", "chart-export", "backtest"):
        assert re.search(rf"bridge {worker}: events seen [1-9].* gave up 0", out)
    assert dev_up.DEV_CHART_KEY not in out and dev_up.FAKE_GEMINI_API_KEY not in out
    assert "trigger again" in out and "curl -sX PATCH" in out
    pids = [int(p) for p in re.findall(r"\bpid (\d+)", out)]
    assert len(pids) == 5  # emulator, fake-gcs, one function per worker
    assert all(_gone(pid) for pid in pids), out
    leftover = set(threading.enumerate()) - threads_before
    assert not [t.name for t in leftover if t.name.startswith(("bridge", "gemini", "chart-img"))]
    assert {k: os.environ.get(k) for k in env_before} == env_before
    assert signal.getsignal(signal.SIGINT) is sigint_before
    logs = {p.name for p in tmp_path.iterdir()}
    assert {"firestore-emulator.log", "fake-gcs.log"} <= logs


@pytest.mark.parametrize("flag", ["--duplicate=0", "--delay=-1", "--reorder-window=-2"])
def test_dev_up_rejects_bad_fault_flags(flag, capsys):
    parser = argparse.ArgumentParser()
    dev_up.add_arguments(parser)
    with pytest.raises(SystemExit):
        parser.parse_args([flag])
    assert "must be" in capsys.readouterr().err

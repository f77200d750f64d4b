"""Every path through the backtest job lifecycle, in memory: the fast layer of the suite.

The worker is built by the composition root (`compose.build("backtest", ...)`) on in-memory
adapters and the typed fakes of `tests/fakes.py`: no emulator, no process. Each scenario drives
one path; the last test replays them all and proves that together they take every edge of the
table, error exits included, so a state or an edge added without a scenario fails here.
"""

from __future__ import annotations

import copy
import io
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from unittest import mock

import pytest

import compose
from adapters.memory import MemoryBlobStore, MemoryDocumentStore
from engine.clock import utc_now
from engine.cloudevent import Event
from engine.errors import Shared, StoreUnavailable, WriteOutcomeUnknown
from engine.runner import Outcome
from engine.unit import Unit
from states.backtest.errors import CATALOGUE
from states.backtest.table import LIFECYCLE
from tests.backtest.vectors import VECTOR_DIR, load_vector
from tests.fakes import FlakyHistory, JobStore, Unreadable
from wheelsim import canonical_json, result_sha256

JOB_ID = "job-1"
UID = "user_alice"
BUCKET = "history-bucket"
ENVIRON = {"HISTORY_BUCKET": BUCKET}
CREATED = "google.cloud.firestore.document.v1.created"
EVENT = Event("e1", CREATED, f"documents/backtestJobs/{JOB_ID}")
HISTORY_URI = f"gs://{BUCKET}/daily/TEST.csv"
STARTED = ("startedAt",)
DOWN = StoreUnavailable(Shared.FIRESTORE_UNAVAILABLE, "firestore write failed: ServiceUnavailable")


def vector_job(name: str) -> dict[str, Any]:
    job: dict[str, Any] = copy.deepcopy(load_vector(VECTOR_DIR / f"{name}.json")["job"])
    job["jobId"] = JOB_ID
    return job


def inline_job(**changes: Any) -> dict[str, Any]:
    """bt01: 31 points, one put expiring OTM: completes with one cycle."""
    return {**vector_job("bt01_short_one_cycle_otm"), **changes}


def history_job(**config: Any) -> dict[str, Any]:
    job = vector_job("bt08_history_source")
    job["configUsed"].update(config)
    return job


OVERFLOW = [100.0] * 30 + [50.0] * 10 + [1e308] * 3  # assigned, then shares * S overflows
HISTORY_CSV = load_vector(VECTOR_DIR / "bt08_history_source.json")["history"]["content"].encode()


def running_job(**fields: Any) -> dict[str, Any]:
    """A job some other invocation claimed, with the given worker fields."""
    return inline_job(status="running", **fields)


def live() -> dict[str, Any]:
    now = utc_now()
    return {"startedAt": now, "leaseExpiresAt": now + timedelta(seconds=900)}


def over() -> dict[str, Any]:
    started = utc_now() - timedelta(hours=1)
    return {"startedAt": started, "leaseExpiresAt": started + timedelta(seconds=900)}


def result_doc(job_id: Any = JOB_ID, user_id: Any = UID) -> dict[str, Any]:
    return {
        "jobId": job_id,
        "userId": user_id,
        "createdAt": utc_now(),
        "engineVersion": "1.0.0",
        "backtestResult": {"engineVersion": "1.0.0"},
        "resultSha256": "0" * 64,
    }


def documents(job: dict[str, Any], result: dict[str, Any] | None = None) -> dict[str, Any]:
    docs = {f"backtestJobs/{JOB_ID}": job}
    if result is not None:
        docs[f"backtestResults/{JOB_ID}"] = result
    return docs


@dataclass
class Result:
    outcome: Outcome | None
    summary: dict[str, int] | None
    units: list[Unit[Any, Any, Any]]
    store: MemoryDocumentStore
    log: str

    @property
    def job(self) -> dict[str, Any]:
        return self.store.document("backtestJobs", JOB_ID) or {}

    @property
    def result(self) -> dict[str, Any] | None:
        return self.store.document("backtestResults", JOB_ID)

    @property
    def events(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log.splitlines()]

    def count(self, event: str) -> int:
        return sum(entry["event"] == event for entry in self.events)

    @property
    def edges(self) -> set[tuple[str, str, str]]:
        return {edge for unit in self.units for edge in unit.trail}


def run(
    store: MemoryDocumentStore,
    history: MemoryBlobStore | None = None,
    *,
    event: Event = EVENT,
    scan: bool = False,
    environ: dict[str, str] | None = None,
    monotonic: Callable[[], float] | None = None,
    now: Callable[[], datetime] = utc_now,
) -> Result:
    units: list[Unit[Any, Any, Any]] = []
    sink = io.StringIO()
    extra: dict[str, Any] = {} if monotonic is None else {"monotonic": monotonic}
    runner = compose.build(
        "backtest",
        ENVIRON if environ is None else environ,
        stream=sink,
        observe=units.append,
        now=now,
        store=store,
        history=history if history is not None else MemoryBlobStore({HISTORY_URI: HISTORY_CSV}),
        **extra,
    )
    if scan:
        summary = runner.scan(runner.config.common.lease_s)
        return Result(None, summary, units, store, sink.getvalue())
    return Result(runner.handle(event), None, units, store, sink.getvalue())


def jobs(job: dict[str, Any], result: dict[str, Any] | None = None, **faults: Any) -> JobStore:
    return JobStore(documents(job, result), **faults)


@contextmanager
def patched(target: str, **kwargs: Any) -> Iterator[None]:
    with mock.patch(target, **kwargs):
        yield


def with_patch(target: str, scenario: Callable[[], Result], **kwargs: Any) -> Callable[[], Result]:
    def patched_run() -> Result:
        with patched(target, **kwargs):
            return scenario()

    return patched_run


def jump_after_start() -> Callable[[], float]:
    """A monotonic clock whose first reading starts the budget; every later one is far past
    the invocation timeout, so the next budget check refuses."""
    readings = iter([0.0])
    return lambda: next(readings, 1e6)


SCENARIOS: dict[str, Callable[[], Result]] = {
    # --- queued jobs
    "inline_success": lambda: run(jobs(inline_job())),
    "history_success": lambda: run(jobs(history_job())),
    "legacy_alias": lambda: run(jobs(vector_job("bt07_legacy_status_alias_and_ints"))),
    "invalid": lambda: run(jobs(inline_job(configUsed=None))),
    "validation_explodes": with_patch(
        "states.backtest.validate.validate_job",
        lambda: run(jobs(inline_job())),
        side_effect=TypeError("a bug of ours"),
    ),
    "reject_lost": lambda: run(
        jobs(inline_job(userId=None), interfere={"failed": {("status",): "failed"}})
    ),
    "reject_unavailable": lambda: run(jobs(inline_job(userId=None), write_faults={"failed": DOWN})),
    "claim_lost": lambda: run(
        jobs(inline_job(), interfere={"running": {("status",): "running", STARTED: utc_now()}})
    ),
    "claim_unknown": lambda: run(
        jobs(
            inline_job(),
            write_faults={"running": WriteOutcomeUnknown(Shared.FIRESTORE_UNAVAILABLE, "?")},
        )
    ),
    "claim_unavailable": lambda: run(jobs(inline_job(), write_faults={"running": DOWN})),
    "result_there_after_claim": lambda: run(jobs(inline_job(), result_doc())),
    "foreign_result_after_claim": lambda: run(jobs(inline_job(), result_doc(user_id="bob"))),
    "owned_probe_fails": lambda: run(jobs(inline_job(), failing_gets={"backtestResults": [True]})),
    # --- history
    "history_missing": lambda: run(jobs(history_job(symbol="NODATA"))),
    "history_bucket_unset": lambda: run(jobs(history_job()), environ={}),
    "history_unavailable": lambda: run(
        jobs(history_job()), FlakyHistory({HISTORY_URI: HISTORY_CSV}, failures=3)
    ),
    "history_flaky_then_read": lambda: run(
        jobs(history_job()), FlakyHistory({HISTORY_URI: HISTORY_CSV}, failures=2)
    ),
    "history_too_large": lambda: run(
        jobs(history_job()), environ={**ENVIRON, "HISTORY_MAX_BYTES": "100"}
    ),
    "history_malformed": lambda: run(
        jobs(history_job()), MemoryBlobStore({HISTORY_URI: b"date,close\n2024-03-04,x\n"})
    ),
    "history_empty_window": lambda: run(
        jobs(history_job(startDate="2025-01-01", endDate="2025-02-01"))
    ),
    "history_window_too_long": lambda: run(
        jobs(history_job(startDate="2000-01-01", endDate="2030-12-31")),
        MemoryBlobStore({HISTORY_URI: long_history(5001)}),
    ),
    # --- the engine and the result
    "engine_error": lambda: run(
        jobs(inline_job(configUsed={**inline_job()["configUsed"], "pricePath": OVERFLOW}))
    ),
    "engine_unexpected": with_patch(
        "states.backtest.simulate.simulate",
        lambda: run(jobs(inline_job())),
        side_effect=ZeroDivisionError("a bug in the engine"),
    ),
    "budget_exceeded": lambda: run(jobs(inline_job()), monotonic=jump_after_start()),
    "result_too_large": with_patch(
        "states.backtest.result.RESULT_MAX_BYTES", lambda: run(jobs(inline_job())), new=100
    ),
    "create_flaky_then_created": lambda: run(jobs(inline_job(), create_faults=[DOWN])),
    "create_fails_absent": lambda: run(jobs(inline_job(), create_faults=[DOWN] * 3)),
    "create_fails_but_landed": lambda: run(
        jobs(inline_job(), create_faults=[DOWN] * 3, create_lands=True)
    ),
    "create_meets_existing": lambda: run(
        jobs(inline_job(), create_faults=[DOWN], create_lands=True)
    ),
    "create_outcome_unknown": lambda: run(
        jobs(
            inline_job(),
            create_faults=[DOWN] * 3,
            failing_gets={"backtestResults": [False, True]},  # the probe reads, the re-read fails
        )
    ),
    "owned_reuse_explodes": lambda: run(jobs(inline_job(), result_doc(job_id=Unreadable()))),
    # --- finalize
    "finalize_lost": lambda: run(
        jobs(inline_job(), interfere={"completed": {("status",): "failed"}})
    ),
    "finalize_stranded": lambda: run(jobs(inline_job(), write_faults={"completed": DOWN})),
    # --- jobs met running (an event, the sweeper)
    "running_alive": lambda: run(jobs(running_job(**live()))),
    "running_split_brain": lambda: run(jobs(running_job(**live()), result_doc())),
    "running_foreign_conflict": lambda: run(
        jobs(running_job(**live()), result_doc(job_id="another-job"))
    ),
    "running_lease_over": lambda: run(jobs(running_job(**over()))),
    "running_no_lease_fields": lambda: run(jobs(running_job())),
    "running_started_long_ago": lambda: run(
        jobs(running_job(startedAt=utc_now() - timedelta(hours=1)))
    ),
    "running_probe_fails": lambda: run(
        jobs(running_job(**over()), failing_gets={"backtestResults": [True]})
    ),
    "running_reuse_explodes": lambda: run(
        jobs(running_job(**live()), result_doc(job_id=Unreadable()))
    ),
    "running_finalize_lost": lambda: run(
        jobs(running_job(**over()), interfere={"failed": {STARTED: utc_now()}})
    ),
    "sweep_expired": lambda: run(jobs(running_job(**over())), scan=True),
    "sweep_live": lambda: run(jobs(running_job(**live())), scan=True),
    "sweep_split_brain": lambda: run(jobs(running_job(**over()), result_doc()), scan=True),
}


def long_history(rows: int) -> bytes:
    start = datetime(2001, 1, 1)
    lines = ["date,close"] + [
        f"{(start + timedelta(days=i)).date().isoformat()},10.00" for i in range(rows)
    ]
    return ("\n".join(lines) + "\n").encode()


# name → (job status, errorCode, result document exists)
EXPECTED: dict[str, tuple[str, str | None, bool]] = {
    "inline_success": ("completed", None, True),
    "history_success": ("completed", None, True),
    "legacy_alias": ("completed", None, True),
    "invalid": ("failed", "CONFIG_INVALID", False),
    "validation_explodes": ("failed", "JOB_INVALID", False),
    "reject_lost": ("failed", None, False),  # the twin's failure, written without a code here
    "reject_unavailable": ("queued", None, False),
    "claim_lost": ("running", None, False),
    "claim_unknown": ("queued", None, False),
    "claim_unavailable": ("queued", None, False),
    "result_there_after_claim": ("completed", None, True),
    "foreign_result_after_claim": ("failed", "RESULT_CONFLICT", True),
    "owned_probe_fails": ("failed", "FIRESTORE_UNAVAILABLE", False),
    "history_missing": ("failed", "HISTORY_NOT_FOUND", False),
    "history_bucket_unset": ("failed", "HISTORY_UNAVAILABLE", False),
    "history_unavailable": ("failed", "HISTORY_UNAVAILABLE", False),
    "history_flaky_then_read": ("completed", None, True),
    "history_too_large": ("failed", "HISTORY_INVALID", False),
    "history_malformed": ("failed", "HISTORY_INVALID", False),
    "history_empty_window": ("failed", "HISTORY_NOT_FOUND", False),
    "history_window_too_long": ("failed", "PRICE_PATH_TOO_LONG", False),
    "engine_error": ("failed", "ENGINE_ERROR", False),
    "engine_unexpected": ("failed", "ENGINE_ERROR", False),
    "budget_exceeded": ("failed", "TIME_BUDGET_EXCEEDED", False),
    "result_too_large": ("failed", "RESULT_TOO_LARGE", False),
    "create_flaky_then_created": ("completed", None, True),
    "create_fails_absent": ("failed", "RESULT_WRITE_FAILED", False),
    "create_fails_but_landed": ("completed", None, True),
    "create_meets_existing": ("completed", None, True),
    "create_outcome_unknown": ("running", None, False),
    "owned_reuse_explodes": ("running", None, True),
    "finalize_lost": ("failed", None, True),
    "finalize_stranded": ("running", None, True),
    "running_alive": ("running", None, False),
    "running_split_brain": ("completed", None, True),
    "running_foreign_conflict": ("failed", "RESULT_CONFLICT", True),
    "running_lease_over": ("failed", "JOB_LEASE_EXPIRED", False),
    "running_no_lease_fields": ("failed", "JOB_LEASE_EXPIRED", False),
    "running_started_long_ago": ("failed", "JOB_LEASE_EXPIRED", False),
    "running_probe_fails": ("running", None, False),
    "running_reuse_explodes": ("running", None, True),
    "running_finalize_lost": ("running", None, False),
    "sweep_expired": ("failed", "JOB_LEASE_EXPIRED", False),
    "sweep_live": ("running", None, False),
    "sweep_split_brain": ("completed", None, True),
}


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_each_path_ends_as_the_spec_says(name: str):
    result = SCENARIOS[name]()
    status, code, has_result = EXPECTED[name]
    assert (result.job.get("status"), result.job.get("errorCode")) == (status, code)
    assert (result.result is not None) == has_result
    if code is not None:
        assert code in CATALOGUE
        message = result.job["errorMessage"]
        assert 0 < len(message) <= 500 and len(message.encode()) <= 512
    for entry in result.events:
        flags = {"uncatalogued", "missingFields", "payloadRejected"} & set(entry)
        assert not flags, f"{entry['event']}: {flags}"
    assert UID not in result.log, "the uid reached the logs"


def test_no_exception_escapes_and_every_event_finishes():
    for name in ("finalize_stranded", "create_outcome_unknown", "owned_reuse_explodes"):
        result = SCENARIOS[name]()
        assert result.outcome is not None and result.outcome.status == "failed"
        assert result.count("cloud_event_finished") == 1


def test_a_completed_job_has_its_result_with_the_hash_of_its_canonical_json():
    for name, (status, _, _) in EXPECTED.items():
        if status != "completed" or name.startswith(("running", "sweep", "result_there")):
            continue
        result = SCENARIOS[name]()
        stored = result.result
        assert stored is not None
        assert stored["resultSha256"] == result_sha256(stored["backtestResult"])
        assert (stored["jobId"], stored["userId"], stored["engineVersion"]) == (
            JOB_ID,
            UID,
            "1.0.0",
        )
        assert isinstance(stored["createdAt"], datetime)
        assert len(canonical_json(stored["backtestResult"])) > 0


def test_the_engine_runs_only_where_it_must():
    runs = {name: SCENARIOS[name]().count("engine_started") for name in SCENARIOS}
    assert {name for name, n in runs.items() if n} == {
        "inline_success",
        "history_success",
        "legacy_alias",
        "history_flaky_then_read",
        "engine_error",
        "engine_unexpected",
        "result_too_large",
        "create_flaky_then_created",
        "create_fails_absent",
        "create_fails_but_landed",
        "create_meets_existing",
        "create_outcome_unknown",
        "finalize_lost",
        "finalize_stranded",
    }
    assert set(runs.values()) <= {0, 1}


def test_the_claim_writes_the_lease_and_clears_the_worker_fields():
    result = SCENARIOS["legacy_alias"]()
    claim = next(w["fields"] for w in result.store.writes if w["fields"].get("status") == "running")
    assert set(claim) == {
        "status",
        "startedAt",
        "leaseExpiresAt",
        "completedAt",
        "errorCode",
        "errorMessage",
    }
    assert claim["leaseExpiresAt"] - claim["startedAt"] == timedelta(seconds=900)
    assert claim["completedAt"] is claim["errorCode"] is claim["errorMessage"] is None
    assert result.job["status"] == "completed"  # the alias is read, never written back


def test_validation_failures_write_once_from_queued_without_a_claim():
    result = SCENARIOS["invalid"]()
    assert [sorted(w["fields"]) for w in result.store.writes] == [
        ["completedAt", "errorCode", "errorMessage", "status"]
    ]
    assert result.job["errorMessage"].startswith("configUsed:")
    assert "startedAt" not in result.job
    assert result.count("job_validation_failed") == result.count("job_failed") == 1


def test_history_reads_are_tried_three_times_then_fail_unavailable():
    flaky = FlakyHistory({HISTORY_URI: HISTORY_CSV}, failures=5)
    result = run(jobs(history_job()), flaky)
    assert flaky.reads == 3
    assert result.job["errorMessage"].startswith("history:")
    assert result.count("history_read_failed") == 3


def test_result_creates_are_tried_three_times_then_read_once():
    store = jobs(inline_job(), create_faults=[DOWN] * 5)
    result = run(store)
    assert store.creates == 3
    assert result.job["errorCode"] == "RESULT_WRITE_FAILED"


def test_a_reused_result_is_never_rewritten():
    stored = result_doc()
    for name in ("result_there_after_claim", "running_split_brain", "sweep_split_brain"):
        result = SCENARIOS[name]()
        assert result.result is not None
        assert result.result["resultSha256"] == stored["resultSha256"]
        assert not [w for w in result.store.writes if "created" in w]


def test_the_sweeper_answers_what_became_of_the_jobs_it_read():
    assert SCENARIOS["sweep_expired"]().summary == {
        "scanned": 1,
        "completed": 0,
        "failed": 1,
        "skipped": 0,
    }
    assert SCENARIOS["sweep_live"]().summary == {
        "scanned": 1,
        "completed": 0,
        "failed": 0,
        "skipped": 1,
    }
    assert SCENARIOS["sweep_split_brain"]().summary == {
        "scanned": 1,
        "completed": 1,
        "failed": 0,
        "skipped": 0,
    }


@pytest.mark.parametrize(
    ("job", "event", "reason"),
    [
        (inline_job(status="completed"), EVENT, "already_final"),
        (inline_job(status="CloudBacktestStatus.failed"), EVENT, "already_final"),
        (inline_job(status="paused"), EVENT, "unknown_status"),
        (inline_job(status=None), EVENT, "unknown_status"),
        (inline_job(), Event("e", CREATED, "documents/backtestJobs/other-job"), "job_not_found"),
        (inline_job(), Event("e", CREATED, "documents/backtestJobs/bad.id"), "invalid_subject"),
        (inline_job(), Event("e", CREATED, "documents/flow_runs/job-1"), "invalid_subject"),
        (
            inline_job(),
            Event("e", "google.cloud.firestore.document.v1.deleted", EVENT.subject),
            "event_type_filtered",
        ),
    ],
)
def test_events_that_need_no_work_write_nothing(job: dict[str, Any], event: Event, reason: str):
    store = MemoryDocumentStore(documents(job))
    result = run(store, event=event)
    assert result.outcome is not None
    assert (result.outcome.status, result.outcome.reason) == ("noop", reason)
    assert store.writes == []


def test_the_event_value_is_never_trusted():
    """A `created` event carries the queued version; the job as stored decides."""
    event = Event(
        "e",
        CREATED,
        EVENT.subject,
        document=f"projects/p/databases/(default)/documents/backtestJobs/{JOB_ID}",
        value=inline_job(status="completed"),
    )
    assert run(MemoryDocumentStore(documents(inline_job())), event=event).job["status"] == (
        "completed"
    )
    stored_final = MemoryDocumentStore(documents(inline_job(status="failed")))
    result = run(stored_final, event=Event("e", CREATED, EVENT.subject, value=inline_job()))
    assert result.outcome is not None and result.outcome.reason == "already_final"


def test_a_failing_first_read_is_logged_and_returns():
    result = run(jobs(inline_job(), failing_gets={"backtestJobs": [True]}))
    assert result.outcome is not None
    assert (result.outcome.status, result.outcome.reason) == ("failed", "FIRESTORE_UNAVAILABLE")
    assert result.count("worker_exception") == result.count("cloud_event_finished") == 1


def test_the_logs_carry_a_uid_hash_never_the_uid():
    result = SCENARIOS["inline_success"]()
    hashes = {entry.get("uidHash") for entry in result.events}
    assert len(hashes - {None}) == 1
    assert UID not in result.log and "pricePath" not in result.log


def test_together_the_scenarios_take_every_edge_of_the_table():
    taken = set().union(*(SCENARIOS[name]().edges for name in SCENARIOS))
    assert LIFECYCLE.untaken(taken) == []

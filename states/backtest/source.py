"""Jobs of `backtestJobs` as units of work: a job is one unit, the document itself (§1-§3).

Pure over the job as read: the dispatch on status decides from Firestore only, never from the
event's value (the payload is never trusted: a `created` event's value is the queued version of
a job that may have run since). Nothing here writes: a queued job's validation and every write
happen in its lifecycle.
"""

from __future__ import annotations

from typing import Any

from engine.cloudevent import doc_id_from_subject
from engine.errors import DocumentInvalid
from engine.log import EventLogger
from engine.ports import JsonObject, Snapshot
from engine.runner import Scan, Selection
from states.backtest.catalog import uid_hash
from states.backtest.errors import JOB_NOT_FOUND, NoOp
from states.backtest.job import JOB_ID_RE, RUNNING, Job, canonical_status

SCAN_LIMIT = 100  # §8.3: jobs per sweep (every 10 minutes; one equality filter, no index)


class BacktestJobs:
    """The `Source` of the backtest worker."""

    not_found = JOB_NOT_FOUND

    def __init__(self, collection: str) -> None:
        self.collection = collection

    def doc_id(self, subject: str) -> str | None:
        return doc_id_from_subject(subject, self.collection, JOB_ID_RE)

    def hint(self, doc_id: str, value: JsonObject) -> str | None:
        """Never: the job document is read before every decision (§1)."""
        return None

    def parse(self, doc_id: str, snapshot: Snapshot) -> Job:
        return Job(doc_id, snapshot.data, canonical_status(snapshot.data.get("status")))

    def invalid(self, doc_id: str, problem: DocumentInvalid, log: EventLogger) -> str:
        """Unreachable: a job is never invalid as a document; validation is a state (§4)."""
        log.error("worker_exception", state=None, exceptionType=type(problem).__name__)
        return "job_invalid"

    def context(self, doc: Job) -> dict[str, Any]:
        uid = doc.user_id
        return {"uidHash": uid_hash(uid) if uid is not None else None}

    def parsed(self, doc: Job, log: EventLogger) -> None:
        """Nothing: the success log order of §3 has no line between the event and the claim."""

    def select(self, doc: Job, only: str | None) -> Selection:
        """§3 step 3: completed/failed → already_final; running → probed (§8.2); queued → run."""
        match doc.status:
            case "queued":
                return Selection(whole=True)
            case "running":
                return Selection(probe=(None,))
            case "completed" | "failed":
                return Selection(noop=NoOp.ALREADY_FINAL)
            case _:
                return Selection(noop=NoOp.UNKNOWN_STATUS)

    def unit_context(self, doc: Job, unit_id: str | None) -> dict[str, Any]:
        return {}

    def selected(self, doc: Job, unit_id: str | None, log: EventLogger) -> None:
        """Nothing: `job_claimed` is the first line of a job's own work."""

    def running(self, doc: Job) -> list[str | None]:
        return [None] if doc.status == RUNNING else []

    def scan_query(self) -> tuple[str, Any, int]:
        return ("status", RUNNING, SCAN_LIMIT)


def scan_report(scan: Scan) -> dict[str, int]:
    """The sweeper's answer (§8.3): jobs read, and what became of them. `skipped` is every
    scanned job left as it was: its lease still live, its probe failed, or a twin finishing
    it first; so the three counts always add up to `scanned`."""
    completed = sum(unit.state == "SUCCEEDED" for unit in scan.units)
    failed = sum(unit.state == "FAILED" for unit in scan.units)
    return {
        "scanned": scan.documents,
        "completed": completed,
        "failed": failed,
        "skipped": scan.documents - completed - failed,
    }

"""Steps of one type in `flow_runs/{runId}`: parsing, selection and the run-level outcomes
(SPEC §1-§3, CHART_EXPORT §1-§2).

Pure over the document as read, apart from recording FLOW_RUN_INVALID on the run; cheap enough
to run on every event, including on the event's own document value.
"""

from __future__ import annotations

from typing import Any, Protocol

import msgspec

from engine.cloudevent import doc_id_from_subject
from engine.config import Common
from engine.errors import DocumentInvalid, StoreUnavailable
from engine.log import EventLogger
from engine.names import storage_safe_key
from engine.ports import DocumentStore, JsonObject, Snapshot
from engine.runner import Scan, Selection
from engine.unit import Unit
from states.flow_run.contracts import RUN_ID_RE, FlowRun

FLOW_RUN_INVALID = "FLOW_RUN_INVALID"
FLOW_RUN_NOT_FOUND = "flow_run_not_found"
RUN_NOT_RUNNING = "run_not_running"
NO_READY_STEP = "no_ready_step"
DEPENDENCY_NOT_SUCCEEDED = "dependency_not_succeeded"


class StepConfig(Protocol):
    @property
    def common(self) -> Common: ...

    @property
    def flow_runs_collection(self) -> str: ...


class StepPorts(Protocol):
    @property
    def store(self) -> DocumentStore: ...


StepUnit = Unit[StepConfig, StepPorts, FlowRun]


def step_of(unit: Unit[Any, Any, FlowRun]) -> Any:
    """The unit's step as read (a `Step`)."""
    assert unit.unit_id is not None, "a flow run unit is one of its steps"
    return unit.doc.steps[unit.unit_id]


def parse_flow_run(run_id: str, data: JsonObject) -> FlowRun:
    """The run-level required subset of SPEC §2; violations are FLOW_RUN_INVALID."""
    if not isinstance(data.get("steps"), dict):
        raise DocumentInvalid("steps must be a map of stepId to step")
    try:
        run = msgspec.convert(data, FlowRun)
    except msgspec.ValidationError as exc:
        raise DocumentInvalid(f"flow run does not match the required subset: {exc}") from None
    unsafe = sorted(step_id for step_id in run.steps if not storage_safe_key(step_id))
    if unsafe:
        shown = ", ".join(repr(step_id)[1:-1] for step_id in unsafe)  # control chars escaped
        raise DocumentInvalid(
            f"stepId not storage-safe (contains '.', '/' or a control character): {shown}"
        )
    if run.run_id is not None and run.run_id != run_id:
        raise DocumentInvalid("runId field does not match the document id")
    return run


def select(run: FlowRun, step_type: str, only: str | None = None) -> Selection:
    """SPEC §3: the smallest READY step whose dependencies all SUCCEEDED (an unknown
    dependency is claimed, to be failed visibly); else RUNNING steps to probe, and why not.
    `only` narrows the choice to one step id (run-local's `--step-id`)."""
    if run.status != "RUNNING":
        return Selection(noop=RUN_NOT_RUNNING)
    steps = run.steps
    ready = sorted(
        step_id
        for step_id, step in steps.items()
        if step.step_type == step_type and step.status == "READY" and only in (None, step_id)
    )
    for step_id in ready:
        deps = steps[step_id].dependencies
        if any(dep not in steps for dep in deps) or all(
            steps[dep].status == "SUCCEEDED" for dep in deps
        ):
            return Selection(execute=step_id)
    running = tuple(
        sorted(
            step_id
            for step_id, step in steps.items()
            if step.step_type == step_type and step.status == "RUNNING" and only in (None, step_id)
        )
    )
    noop = DEPENDENCY_NOT_SUCCEEDED if ready else NO_READY_STEP
    return Selection(probe=running, noop=noop)


class FlowRunSteps:
    """The `Source` of a step worker: steps of `step_type` in the configured collection."""

    not_found = FLOW_RUN_NOT_FOUND

    def __init__(self, step_type: str, collection: str, store: DocumentStore) -> None:
        self.step_type = step_type
        self.collection = collection
        self._store = store

    def doc_id(self, subject: str) -> str | None:
        return doc_id_from_subject(subject, self.collection, RUN_ID_RE)

    def hint(self, doc_id: str, value: JsonObject) -> str | None:
        """Safe without reading Firestore: every document version that has work (a READY
        step whose dependencies succeeded, a RUNNING step to recover, an invalid run to
        report) is itself delivered at least once, and is never decided from here."""
        try:
            hinted = parse_flow_run(doc_id, value)
        except DocumentInvalid:
            return None
        selection = select(hinted, self.step_type)
        if selection.execute is None and not selection.probe:
            return selection.noop
        return None

    def parse(self, doc_id: str, snapshot: Snapshot) -> FlowRun:
        return parse_flow_run(doc_id, snapshot.data)

    def invalid(self, doc_id: str, problem: DocumentInvalid, log: EventLogger) -> str:
        """FLOW_RUN_INVALID on the run, written once: an identical error already there is left
        alone, so the event our own write triggers does not write again."""
        from engine.gates import FINALIZE_TIMEOUT_S  # loaded only when a run is invalid

        error = {"code": FLOW_RUN_INVALID, "message": problem.message}
        try:
            written = self._store.update(
                self.collection,
                doc_id,
                {("error",): error},
                lambda data: "unchanged" if data.get("error") == error else None,
                FINALIZE_TIMEOUT_S,
            ).committed
        except StoreUnavailable:
            written = False
        log.error("flow_run_invalid", error=error, errorWritten=written)
        return FLOW_RUN_INVALID

    def context(self, doc: FlowRun) -> dict[str, Any]:
        return {"flowKey": doc.flow_key, "symbol": doc.symbol}

    def parsed(self, doc: FlowRun, log: EventLogger) -> None:
        log.info(
            "cloud_event_parsed",
            flowRunFound=True,
            flowRunStatus=doc.status,
            flowRunSteps=[
                {
                    "id": sid,
                    "stepType": s.step_type,
                    "status": s.status,
                    "dependsOn": s.dependencies,
                }
                for sid, s in sorted(doc.steps.items())
            ],
        )

    def select(self, doc: FlowRun, only: str | None) -> Selection:
        return select(doc, self.step_type, only)

    def unit_context(self, doc: FlowRun, unit_id: str | None) -> dict[str, Any]:
        step = doc.steps.get(unit_id or "")
        return {"stepId": unit_id, "timeframe": step.timeframe if step else None}

    def selected(self, doc: FlowRun, unit_id: str | None, log: EventLogger) -> None:
        log.info("ready_step_selected", stepType=self.step_type)

    def running(self, doc: FlowRun) -> list[str | None]:
        return [
            step_id
            for step_id, step in sorted(doc.steps.items())
            if step.step_type == self.step_type and step.status == "RUNNING"
        ]

    def scan_query(self) -> tuple[str, Any, int]:
        return ("status", "RUNNING", SCAN_LIMIT)


SCAN_LIMIT = 1000  # flow runs per scan; every 10 minutes, one equality filter, no index


def scan_report(scan: Scan) -> dict[str, int]:
    """The stale-step recovery's answer: runs scanned, steps finished by it (adopted from
    their artifact, or failed by their lease), and probes that failed (steps left as found)."""
    finished = [unit for unit in scan.units if unit.state in ("SUCCEEDED", "FAILED")]
    return {
        "runsScanned": scan.documents,
        "stale": len(finished),
        "recovered": sum(unit.state == "SUCCEEDED" for unit in finished),
        "expired": sum(unit.state == "FAILED" for unit in finished),
        "probeFailed": sum(unit.ended == "probe_failed" for unit in scan.units),
    }

"""Drives one invocation: event → flow run → selection → one step's lifecycle machine.

Run-level outcomes (ignored events, invalid flow runs, no-ops) are decided here, before any step
is touched; step-level work happens only inside the machine of `engine.lifecycle`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import msgspec

from engine.budget import TimeBudget
from engine.clock import utc_now
from engine.config import WorkerConfig
from engine.contracts import RUN_ID_RE, FlowRun
from engine.errors import ErrorCode, FlowRunInvalid, Ignored, NoOp
from engine.log import EventLogger
from engine.names import storage_safe_key
from engine.ports import Ports
from engine.step_run import StepRun
from states.ready import LLM_REPORT, select

ACCEPTED_TYPES = frozenset(
    {
        "google.cloud.firestore.document.v1.updated",
        "google.cloud.firestore.document.v1.created",
        "google.cloud.firestore.document.v1.written",
    }
)


@dataclass(frozen=True)
class Event:
    """The parts of a CloudEvent the worker uses; the document value is only a hint."""

    event_id: str
    event_type: str
    subject: str
    trace: str | None = None
    document: str | None = None
    value: dict[str, Any] | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Outcome:
    status: Literal["noop", "ok", "failed"]
    reason: str | None = None
    run_id: str | None = None
    step_id: str | None = None
    state: str | None = None


class Stranded(Exception):
    """The step outcome could not be recorded; the step stays RUNNING for recovery."""


def run_id_from_subject(subject: str, collection: str) -> str | None:
    """runId = the segment after the one equal to the collection name (SPEC §1)."""
    segments = subject.split("/")
    for index, segment in enumerate(segments[:-1]):
        if segment == collection:
            candidate = segments[index + 1]
            return candidate if RUN_ID_RE.match(candidate) else None
    return None


def parse_flow_run(run_id: str, data: dict[str, Any]) -> FlowRun:
    """The run-level required subset of SPEC §2; violations are FLOW_RUN_INVALID."""
    if not isinstance(data.get("steps"), dict):
        raise FlowRunInvalid("steps must be a map of stepId to step")
    try:
        run = msgspec.convert(data, FlowRun)
    except msgspec.ValidationError as exc:
        raise FlowRunInvalid(f"flow run does not match the required subset: {exc}") from None
    unsafe = sorted(step_id for step_id in run.steps if not storage_safe_key(step_id))
    if unsafe:
        shown = ", ".join(repr(step_id)[1:-1] for step_id in unsafe)  # control chars escaped
        raise FlowRunInvalid(
            f"stepId not storage-safe (contains '.', '/' or a control character): {shown}"
        )
    if run.run_id is not None and run.run_id != run_id:
        raise FlowRunInvalid("runId field does not match the document id")
    return run


class Worker:
    """One per instance: holds the wired ports and configuration, handles events one by one."""

    def __init__(
        self,
        config: WorkerConfig,
        ports: Ports,
        log: EventLogger,
        now: Callable[[], datetime] = utc_now,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.ports = ports
        self.log = log
        self.now = now
        self.monotonic = monotonic

    def handle(
        self, event: Event, started: float | None = None, only_step: str | None = None
    ) -> Outcome:
        budget = TimeBudget(
            self.config.invocation_timeout_s,
            self.config.finalize_budget_s,
            monotonic=self.monotonic,
            started=started,
        )
        log = self.log.bind(eventId=event.event_id, trace=event.trace)
        log.info(
            "cloud_event_received",
            eventType=event.event_type,
            subject=event.subject,
            document=event.document,
        )
        outcome = self._handle(event, budget, log, only_step)
        log_finished(log.bind(runId=outcome.run_id, stepId=outcome.step_id), outcome)
        if outcome.state == "STRANDED":
            raise Stranded(f"step {outcome.step_id} could not be finalized")
        return outcome

    def _handle(
        self, event: Event, budget: TimeBudget, log: EventLogger, only_step: str | None
    ) -> Outcome:
        if event.event_type not in ACCEPTED_TYPES:
            return ignored(log, Ignored.EVENT_TYPE_FILTERED)
        run_id = run_id_from_subject(event.subject, self.config.flow_runs_collection)
        if run_id is None:
            return ignored(log, Ignored.INVALID_SUBJECT)
        log = log.bind(runId=run_id)
        hinted = self._nothing_to_do(event, run_id, only_step)
        if hinted is not None:
            return noop(log, hinted, run_id, source="event")
        snapshot = self.ports.store.load(run_id)
        if snapshot is None:
            return ignored(log, Ignored.FLOW_RUN_NOT_FOUND, run_id)
        try:
            flow_run = parse_flow_run(run_id, snapshot.data)
        except FlowRunInvalid as exc:
            error = {"code": str(ErrorCode.FLOW_RUN_INVALID), "message": exc.message}
            written = self.ports.store.set_run_error(run_id, error)
            log.error("flow_run_invalid", error=error, errorWritten=written)
            return Outcome("failed", reason=str(ErrorCode.FLOW_RUN_INVALID), run_id=run_id)
        log = log.bind(flowKey=flow_run.flow_key, symbol=flow_run.symbol)
        log.info(
            "cloud_event_parsed",
            flowRunFound=True,
            flowRunStatus=flow_run.status,
            flowRunSteps=[
                {
                    "id": sid,
                    "stepType": s.step_type,
                    "status": s.status,
                    "dependsOn": s.dependencies,
                }
                for sid, s in sorted(flow_run.steps.items())
            ],
        )
        selection = select(flow_run, only=only_step)
        if selection.execute is not None or selection.recover:
            from engine import lifecycle  # deferred: the machine is only needed to work a step
        if selection.execute is not None:
            run = self._step_run(run_id, selection.execute, flow_run, budget, log)
            run.log.info("ready_step_selected", stepType=run.step.step_type)
            lifecycle.attach(run, initial="READY")
            run.trigger("start")
            return self._outcome(run)
        probe_failed: str | None = None
        for step_id in selection.recover:
            run = self._step_run(run_id, step_id, flow_run, budget, log)
            lifecycle.attach(run, initial="RUNNING")
            run.trigger("recover")
            if run.probe_failed:  # logged once; the next RUNNING step is still probed
                probe_failed = probe_failed or step_id
                continue
            if run.state != "RUNNING":  # the artifact guard let it through
                return self._outcome(run)
        if probe_failed is not None:
            return Outcome("failed", reason="probe_failed", run_id=run_id, step_id=probe_failed)
        assert selection.noop is not None
        return noop(log, selection.noop, run_id, source="firestore")

    def recover_stale(self, lease_s: float, started: float | None = None) -> dict[str, int]:
        """Stale-step recovery: every LLM_REPORT step RUNNING longer than the lease is finalized
        from its artifact when one exists, otherwise failed STEP_LEASE_EXPIRED."""
        budget = TimeBudget(
            self.config.invocation_timeout_s,
            self.config.finalize_budget_s,
            monotonic=self.monotonic,
            started=started,
        )
        log = self.log.bind(eventId=f"stale-scan-{self.now().strftime('%Y%m%dT%H%M%S')}")
        runs = self.ports.store.running_runs()
        summary = {
            "runsScanned": len(runs),
            "stale": 0,
            "recovered": 0,
            "expired": 0,
            "probeFailed": 0,
        }
        for run_id, data in runs:
            # Each run on its own: one foreign or broken document never stops the scan.
            try:
                self._reap_run(run_id, data, lease_s, budget, log.bind(runId=run_id), summary)
            except Exception as exc:
                log.error("stale_scan_run_failed", runId=run_id, exceptionType=type(exc).__name__)
        log.info("stale_scan_finished", leaseSeconds=lease_s, **summary)
        return summary

    def _reap_run(
        self,
        run_id: str,
        data: dict[str, Any],
        lease_s: float,
        budget: TimeBudget,
        log: EventLogger,
        summary: dict[str, int],
    ) -> None:
        from engine import lifecycle

        try:
            flow_run = parse_flow_run(run_id, data)
        except FlowRunInvalid:
            return  # the next event for it records FLOW_RUN_INVALID
        for step_id, step in sorted(flow_run.steps.items()):
            if step.step_type != LLM_REPORT or step.status != "RUNNING":
                continue
            run = self._step_run(run_id, step_id, flow_run, budget, log)
            run.lease_s = lease_s
            lifecycle.attach(run, initial="RUNNING")
            run.trigger("reap")
            if run.probe_failed:
                summary["probeFailed"] += 1
                continue
            if run.state == "RUNNING":
                continue  # within its lease and no artifact: maybe still alive
            summary["stale"] += 1
            summary["recovered"] += run.state == "SUCCEEDED"
            summary["expired"] += run.state == "FAILED"

    def _nothing_to_do(self, event: Event, run_id: str, only_step: str | None) -> NoOp | None:
        """The no-op reason when the event's own document value shows nothing to do.

        Safe without reading Firestore: every document version that has work (a READY step
        whose dependencies succeeded, a RUNNING step to recover, an invalid run to report) is
        itself delivered at least once, and is never decided from here.
        """
        if event.value is None or not (event.document or "").endswith(
            f"/{self.config.flow_runs_collection}/{run_id}"
        ):
            return None
        try:
            hinted = parse_flow_run(run_id, event.value)
        except FlowRunInvalid:
            return None
        selection = select(hinted, only=only_step)
        if selection.execute is None and not selection.recover:
            return selection.noop
        return None

    def _step_run(
        self, run_id: str, step_id: str, flow_run: FlowRun, budget: TimeBudget, log: EventLogger
    ) -> StepRun:
        step = flow_run.steps[step_id]
        return StepRun(
            run_id=run_id,
            step_id=step_id,
            flow_run=flow_run,
            ports=self.ports,
            config=self.config,
            budget=budget,
            log=log.bind(stepId=step_id, timeframe=step.timeframe),
            now=self.now,
        )

    @staticmethod
    def _outcome(run: StepRun) -> Outcome:
        ids = {"run_id": run.run_id, "step_id": run.step_id, "state": run.state}
        if run.state == "SUCCEEDED":
            return Outcome("ok", **ids)
        if run.state == "FAILED":
            reason = str(run.failure.code) if run.failure else None
            return Outcome("failed", reason=reason, **ids)
        if run.outcome_unknown:
            return Outcome("failed", reason="claim_outcome_unknown", **ids)
        if run.state == "UNCHANGED":
            reason = str(run.noop) if run.noop else (str(run.failure.code) if run.failure else None)
            status: Literal["noop", "failed"] = "noop" if run.noop else "failed"
            if status == "noop":
                run.log.info("cloud_event_noop", reason=reason)
            return Outcome(status, reason=reason, **ids)
        return Outcome("failed", reason="stranded", **ids)


def ignored(log: EventLogger, reason: Ignored, run_id: str | None = None) -> Outcome:
    log.info("cloud_event_ignored", reason=str(reason))
    return Outcome("noop", reason=str(reason), run_id=run_id)


def noop(log: EventLogger, reason: NoOp, run_id: str, source: str) -> Outcome:
    log.info("cloud_event_noop", reason=str(reason), source=source)
    return Outcome("noop", reason=str(reason), run_id=run_id)


def log_finished(log: EventLogger, outcome: Outcome) -> None:
    fields: dict[str, Any] = {"status": outcome.status, "reason": outcome.reason}
    if outcome.step_id:
        fields["stepId"] = outcome.step_id
    if outcome.state:
        fields["stepState"] = outcome.state
    log.emit("cloud_event_finished", "ERROR" if outcome.state == "STRANDED" else "INFO", **fields)

"""One invocation: event → document → selection → a unit's run through its lifecycle.

Document-level outcomes (ignored events, invalid documents, no-ops) are decided here, before
any unit is touched; unit-level work happens only inside the lifecycle. The same runner serves
the stale-work scans, unit by unit, each in isolation.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Generic, Literal, Protocol, TypeVar

from engine.budget import TimeBudget
from engine.clock import utc_now
from engine.cloudevent import ACCEPTED_TYPES, Event
from engine.errors import (
    DocumentInvalid,
    Failure,
    Ignored,
    StoreUnavailable,
    internal_error,
)
from engine.faults import crash_hook
from engine.log import EventLogger
from engine.ports import DocumentStore, JsonObject, Snapshot

if TYPE_CHECKING:
    from engine.config import Common
    from engine.lifecycle import Lifecycle, Next, State
    from engine.machine import LifecycleMachine
    from engine.unit import Unit

LEFT_ALONE = "left_alone"  # a probe found a live claim: maybe still working, not ours to end

C = TypeVar("C", bound="Configured")
P = TypeVar("P", bound="Stored")
D = TypeVar("D")


class Configured(Protocol):
    @property
    def common(self) -> Common: ...


class Stored(Protocol):
    @property
    def store(self) -> DocumentStore: ...


@dataclass(frozen=True)
class Selection:
    """One unit to execute, units RUNNING to probe, and the no-op reason when nothing runs.

    A unit id of None is the document itself (a backtest job is one unit, not a map of steps):
    `whole` executes it, and None among `probe` probes it."""

    execute: str | None = None
    probe: tuple[str | None, ...] = ()
    noop: str | None = None
    whole: bool = False

    @property
    def runs(self) -> bool:
        return self.execute is not None or self.whole


class Source(Protocol[D]):
    """How a worker finds its units of work in one document of its collection."""

    collection: str
    not_found: str  # the `cloud_event_ignored` reason for a missing document

    def doc_id(self, subject: str) -> str | None: ...

    def hint(self, doc_id: str, value: JsonObject) -> str | None:
        """A no-op reason decided from the event's own document value, or None: only ever a
        no-op, and only when every version with work is itself delivered (COMMON.md)."""
        ...

    def parse(self, doc_id: str, snapshot: Snapshot) -> D:
        """Raises DocumentInvalid when the document as a whole is unusable."""
        ...

    def invalid(self, doc_id: str, problem: DocumentInvalid, log: EventLogger) -> str:
        """Records an invalid document as the worker's spec says; returns the outcome reason."""
        ...

    def context(self, doc: D) -> dict[str, Any]:
        """Log context of the document (flowKey, symbol, a user hash...)."""
        ...

    def parsed(self, doc: D, log: EventLogger) -> None:
        """Logs what was read, in the worker's vocabulary."""
        ...

    def select(self, doc: D, only: str | None) -> Selection: ...

    def unit_context(self, doc: D, unit_id: str | None) -> dict[str, Any]: ...

    def selected(self, doc: D, unit_id: str | None, log: EventLogger) -> None: ...

    def running(self, doc: D) -> list[str | None]:
        """Units RUNNING in this document, for a stale-work scan."""
        ...

    def scan_query(self) -> tuple[str, Any, int]:
        """(field, value, limit) of the documents a stale-work scan reads."""
        ...


@dataclass(frozen=True)
class Outcome:
    status: Literal["noop", "ok", "failed"]
    reason: str | None = None
    doc_id: str | None = None
    unit_id: str | None = None
    state: str | None = None


@dataclass(frozen=True)
class UnitResult:
    doc_id: str
    unit_id: str | None
    state: str
    code: str | None
    ended: str | None


@dataclass
class Scan:
    documents: int = 0
    units: list[UnitResult] = field(default_factory=list)
    broken: int = 0  # documents whose handling raised (logged, skipped)


class Stranded(Exception):
    """The unit's outcome could not be recorded; it stays RUNNING for lease recovery."""


@dataclass(frozen=True)
class Worker(Generic[C, P, D]):
    """A worker, as the engine sees it: a lifecycle, a source of units, and how it logs."""

    name: str
    table: str  # dotted path of its `Lifecycle`, loaded when a unit first runs
    source: Callable[[C, P], Source[D]]
    id_field: str  # the log field naming the document (runId, jobId)
    unit_field: str | None  # the log field naming the unit (stepId), None: the document is it
    lease_on_events: bool = False  # a RUNNING unit met by an event is expired by its lease too
    # A stale-work scan's answer (the HTTP function's body) and the event that logs it.
    scan_report: Callable[[Scan], dict[str, int]] = lambda scan: {"scanned": scan.documents}
    scan_event: str = "stale_scan_finished"
    # Every outcome of an event returns normally (BACKTEST §1): a failure of ours, or a unit
    # left stranded for lease recovery, is logged and ends the invocation, never raised.
    contained: bool = False

    @property
    def lifecycle(self) -> Lifecycle:
        from engine.lifecycle import load_table  # the table loads with the first unit's run

        return load_table(self.table)


class Runner(Generic[C, P, D]):
    """One per worker per instance: the wired ports, configuration and machine."""

    def __init__(
        self,
        worker: Worker[C, P, D],
        config: C,
        ports: P,
        log: EventLogger,
        now: Callable[[], datetime] = utc_now,
        monotonic: Callable[[], float] = time.monotonic,
        observe: Callable[[Unit[C, P, D]], None] | None = None,
    ) -> None:
        """`observe` sees every unit once its run ends (tests follow the paths taken)."""
        self.worker = worker
        self.observe = observe
        self.config = config
        self.ports = ports
        self.log = log
        self.now = now
        self.monotonic = monotonic
        self.source = worker.source(config, ports)
        self._machine: LifecycleMachine | None = None
        self._crash = crash_hook()

    @property
    def lifecycle(self) -> Lifecycle:
        return self.worker.lifecycle

    def machine(self) -> LifecycleMachine:
        """Built on first use: most events are no-ops decided before any unit runs."""
        if self._machine is None:
            self._machine = self.worker.lifecycle.build()
        return self._machine

    def budget(self, started: float | None) -> TimeBudget:
        common = self.config.common
        return TimeBudget(
            common.invocation_timeout_s,
            common.finalize_budget_s,
            monotonic=self.monotonic,
            started=started,
        )

    # --- one event -----------------------------------------------------------------------

    def handle(
        self, event: Event, started: float | None = None, only: str | None = None
    ) -> Outcome:
        budget = self.budget(started)
        log = self.log.bind(eventId=event.event_id, trace=event.trace)
        log.info(
            "cloud_event_received",
            eventType=event.event_type,
            subject=event.subject,
            document=event.document,
        )
        try:
            outcome = self._handle(event, budget, log, only)
        except Exception as exc:
            if not self.worker.contained:
                raise
            outcome = self._contained(event, log, exc)
        ids = {self.worker.id_field: outcome.doc_id}
        if self.worker.unit_field:
            ids[self.worker.unit_field] = outcome.unit_id
        finished(log.bind(**ids), outcome, self.worker.unit_field or self.worker.id_field)
        if outcome.reason == "stranded" and not self.worker.contained:
            raise Stranded(f"unit {outcome.unit_id or outcome.doc_id} could not be finalized")
        return outcome

    def _contained(self, event: Event, log: EventLogger, exc: Exception) -> Outcome:
        """A failure outside any unit's states (they all have exits): a read of the document
        that failed, or a defect of ours before a unit ran. Logged once, never raised."""
        try:
            doc_id = self.source.doc_id(event.subject)
        except Exception:
            doc_id = None
        log.bind(**{self.worker.id_field: doc_id}).error(
            "worker_exception",
            state=None,
            exceptionType=type(exc).__name__,
            reason=exc.message if isinstance(exc, StoreUnavailable) else None,
        )
        code = exc.code if isinstance(exc, StoreUnavailable) else "worker_exception"
        return Outcome("failed", reason=code, doc_id=doc_id)

    def _handle(
        self, event: Event, budget: TimeBudget, log: EventLogger, only: str | None
    ) -> Outcome:
        source = self.source
        if event.event_type not in ACCEPTED_TYPES:
            return ignored(log, Ignored.EVENT_TYPE_FILTERED)
        doc_id = source.doc_id(event.subject)
        if doc_id is None:
            return ignored(log, Ignored.INVALID_SUBJECT)
        log = log.bind(**{self.worker.id_field: doc_id})
        if (
            only is None
            and event.value is not None
            and (event.document or "").endswith(f"/{source.collection}/{doc_id}")
        ):
            hinted = source.hint(doc_id, event.value)
            if hinted is not None:
                return noop(log, hinted, doc_id, origin="event")
        snapshot = self.ports.store.get(source.collection, doc_id)
        if snapshot is None:
            return ignored(log, source.not_found, doc_id)
        try:
            doc = source.parse(doc_id, snapshot)
        except DocumentInvalid as exc:
            return Outcome("failed", reason=source.invalid(doc_id, exc, log), doc_id=doc_id)
        log = log.bind(**source.context(doc))
        source.parsed(doc, log)
        selection = source.select(doc, only)
        if selection.runs:
            unit = self._unit(doc_id, selection.execute, doc, snapshot, budget, log)
            source.selected(doc, selection.execute, unit.log)
            self._drive(unit, "READY", "start")
            return self._outcome(unit)
        left: Outcome | None = None
        for unit_id in selection.probe:
            unit = self._unit(doc_id, unit_id, doc, snapshot, budget, log)
            if self.worker.lease_on_events:
                unit.lease_s = self.config.common.lease_s
            self._drive(unit, "RUNNING", "probe")
            if unit.ended == "probe_failed":  # logged once; the next unit is still probed
                left = left or Outcome("failed", "probe_failed", doc_id, unit_id, unit.state)
                continue
            if unit.ended != LEFT_ALONE:
                return self._outcome(unit)
            left = left or Outcome("noop", unit.noop, doc_id, unit_id, unit.state)
        if left is not None and (left.status == "failed" or selection.noop is None):
            if left.status == "noop":
                log.info("cloud_event_noop", reason=left.reason)
            return left
        assert selection.noop is not None, "a selection names work or a no-op reason"
        return noop(log, selection.noop, doc_id, origin="firestore")

    # --- stale-work scans ----------------------------------------------------------------

    def scan(self, lease_s: float, started: float | None = None) -> dict[str, int]:
        """Every RUNNING unit of the worker, each probed with `lease_s`: adopted from its
        artifact, failed by its lease, or left alone. One broken document never stops it.
        Returns the worker's summary of the scan, which is also logged."""
        budget = self.budget(started)
        log = self.log.bind(eventId=f"stale-scan-{self.now().strftime('%Y%m%dT%H%M%S')}")
        source = self.source
        field_, value, limit = source.scan_query()
        documents = self.ports.store.query(source.collection, field_, value, limit)
        scan = Scan(documents=len(documents))
        for doc_id, data in documents:
            try:
                self._scan_document(doc_id, data, lease_s, budget, log, scan)
            except Exception as exc:
                scan.broken += 1
                log.error(
                    "stale_scan_run_failed",
                    **{self.worker.id_field: doc_id},
                    exceptionType=type(exc).__name__,
                )
        summary = self.worker.scan_report(scan)
        log.info(self.worker.scan_event, leaseSeconds=lease_s, **summary)
        return summary

    def _scan_document(
        self,
        doc_id: str,
        data: JsonObject,
        lease_s: float,
        budget: TimeBudget,
        log: EventLogger,
        scan: Scan,
    ) -> None:
        snapshot = Snapshot(data=data, update_time=self.now())
        try:
            doc = self.source.parse(doc_id, snapshot)
        except DocumentInvalid:
            return  # the next event for it records the problem
        log = log.bind(**{self.worker.id_field: doc_id}, **self.source.context(doc))
        for unit_id in self.source.running(doc):
            unit = self._unit(doc_id, unit_id, doc, snapshot, budget, log)
            unit.lease_s = lease_s
            self._drive(unit, "RUNNING", "probe")
            code = unit.failure.code if unit.failure else None
            scan.units.append(UnitResult(doc_id, unit_id, unit.state, code, unit.ended))

    # --- one unit ------------------------------------------------------------------------

    def _unit(
        self,
        doc_id: str,
        unit_id: str | None,
        doc: D,
        snapshot: Snapshot,
        budget: TimeBudget,
        log: EventLogger,
    ) -> Unit[C, P, D]:
        from engine.unit import Unit

        return Unit(
            doc_id=doc_id,
            unit_id=unit_id,
            doc=doc,
            snapshot=snapshot,
            config=self.config,
            ports=self.ports,
            budget=budget,
            log=log.bind(**self.source.unit_context(doc, unit_id)),
            now=self.now,
        )

    def _drive(self, unit: Unit[C, P, D], initial: str, trigger: str) -> None:
        from engine.machine import Halted  # loaded with the machine, on the first unit

        try:
            self.machine().drive(unit, initial, trigger, self._entered, self._on_error)
        except Halted as exc:
            unit.log.error(
                "worker_exception",
                state=unit.state,
                exceptionType=type(exc.__cause__ or exc).__name__,
                wayOut="none",
            )
            unit.ended = "halted"
        if self.observe is not None:
            self.observe(unit)

    def _entered(self, unit: Unit[C, P, D], state: str) -> None:
        if self._crash is not None:
            self._crash(unit, state)

    def _on_error(self, unit: Unit[C, P, D], state: State, exc: Exception) -> Next:
        """The error policy, in one place: the state's declared exit, taken once."""
        exit_ = state.on_error_owned if unit.owned and state.on_error_owned else state.on_error
        if exit_ is None:
            from engine.machine import Halted

            raise Halted(f"{state.name} declares no way out") from exc
        expected = isinstance(exc, Failure | StoreUnavailable)
        if exit_.kind == "leave":
            unit.log.error(
                "probe_failed",
                exceptionType=type(exc).__name__,
                reason=exc.message if isinstance(exc, StoreUnavailable) else None,
            )
            unit.ended = "probe_failed"
            return exit_.kind, None
        if not expected:
            unit.log.error("worker_exception", state=unit.state, exceptionType=type(exc).__name__)
        if exit_.kind == "strand":
            unit.stranded = True
            return exit_.kind, None
        if isinstance(exc, Failure):
            failure = exc
        elif isinstance(exc, StoreUnavailable):
            failure = exc.as_failure()
        else:
            failure = internal_error(exc, state.error_code or self.lifecycle.internal_error_code)
        if unit.failure is None or isinstance(exc, Failure):
            unit.failure = failure
        return exit_.kind, None

    def _outcome(self, unit: Unit[C, P, D]) -> Outcome:
        ids = {"doc_id": unit.doc_id, "unit_id": unit.unit_id, "state": unit.state}
        if unit.ended == "claim_outcome_unknown":
            return Outcome("failed", reason="claim_outcome_unknown", **ids)
        if unit.stranded or unit.ended == "halted" or unit.state not in self.lifecycle.terminal:
            return Outcome("failed", reason="stranded", **ids)
        if unit.state == "SUCCEEDED":
            return Outcome("ok", **ids)
        if unit.state == "FAILED":
            return Outcome("failed", reason=unit.failure.code if unit.failure else None, **ids)
        if unit.noop is not None:
            unit.log.info("cloud_event_noop", reason=unit.noop)
            return Outcome("noop", reason=unit.noop, **ids)
        reason = unit.failure.code if unit.failure else unit.ended
        return Outcome("failed", reason=reason, **ids)


def ignored(log: EventLogger, reason: str, doc_id: str | None = None) -> Outcome:
    log.info("cloud_event_ignored", reason=str(reason))
    return Outcome("noop", reason=str(reason), doc_id=doc_id)


def noop(log: EventLogger, reason: str, doc_id: str, origin: str) -> Outcome:
    log.info("cloud_event_noop", reason=str(reason), source=origin)
    return Outcome("noop", reason=str(reason), doc_id=doc_id)


def finished(log: EventLogger, outcome: Outcome, unit_field: str) -> None:
    fields: dict[str, Any] = {"status": outcome.status, "reason": outcome.reason}
    if outcome.unit_id:
        fields[unit_field] = outcome.unit_id
    if outcome.state:
        fields[f"{unit_field.removesuffix('Id')}State"] = outcome.state  # stepState, jobState
    severity = "ERROR" if outcome.reason == "stranded" else "INFO"
    log.emit("cloud_event_finished", severity, **fields)

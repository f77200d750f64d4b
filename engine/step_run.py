"""One execution of one step: the model the lifecycle machine drives.

It carries what the invocation knows (ids, the flow run as read, ports, budget, logger) and what
the states produce for each other (prompt, schema, context, responses, outcome). Data flows one
way: each state reads what earlier states set and adds its own part.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from engine.budget import TimeBudget
from engine.config import WorkerConfig
from engine.contracts import (
    FlowRun,
    JsonObject,
    LLMProfile,
    LLMPrompt,
    LLMReportFile,
    LLMSchema,
    Step,
)
from engine.errors import NoOp, StepFailure, StoreUnavailable, internal_error
from engine.log import EventLogger
from engine.ports import LLMResponse, Ports


@dataclass
class Context:
    """What the model is shown, plus the URIs recorded in the artifact metadata."""

    user_text: str
    images: list[bytes]
    ohlcv_uri: str
    manifest_uri: str
    report_uris: list[str]


@dataclass
class Invalid:
    """Why the last candidate was rejected (sanitized: no candidate text)."""

    kind: str  # finish_reason | missing_text | json_parse | schema_validation
    message: str
    errors: list[dict[str, str]]
    text_bytes: int
    text_sha256: str | None


class Machined:
    """What `engine.lifecycle.attach` binds onto its model (annotations only, so the machine
    finds the names free and binds them)."""

    state: str
    trigger: Callable[..., bool]
    may_trigger: Callable[..., bool]


@dataclass
class StepRun(Machined):
    run_id: str
    step_id: str
    flow_run: FlowRun
    ports: Ports
    config: WorkerConfig
    budget: TimeBudget
    log: EventLogger
    now: Callable[[], datetime]

    # set by states, in lifecycle order
    started_at: datetime | None = None
    # the claim's startedAt as stored (any value, or ABSENT): which claim a finalize may end
    claim_identity: dict[str, Any] | None = None
    lease_s: float | None = None  # set for stale-step recovery only
    prompt_id: str | None = None
    profile: LLMProfile | None = None
    profile_raw: JsonObject | None = None
    prompt: LLMPrompt | None = None
    schema_id: str | None = None
    schema: LLMSchema | None = None
    schema_sha256: str | None = None
    context: Context | None = None
    response: LLMResponse | None = None
    attempts: int = 0
    invalid: Invalid | None = None
    output: JsonObject | None = None
    report: LLMReportFile | None = None
    gcs_uri: str | None = None
    reused: bool = False
    failure: StepFailure | None = None
    noop: NoOp | None = None
    stranded: BaseException | None = None
    probe_failed: bool = False
    outcome_unknown: bool = False  # our claim may have landed: left to stale-step recovery
    halted: bool = False
    failed_from: set[str] = field(default_factory=set)

    @property
    def step(self) -> Step:
        return self.flow_run.steps[self.step_id]

    def on_error(self, error: BaseException | None) -> None:
        """Machine exception hook: every escaped exception becomes a catalogued failure.

        Never re-entrant: each state is failed out of at most once, and only along a `fail`
        edge it has; an error the way out cannot take is logged and ends the machine where it
        stands, instead of firing `fail` again from its own MachineError (a hot loop)."""
        if error is not None and not isinstance(error, Exception):
            raise error  # KeyboardInterrupt, SystemExit: never swallowed
        if self.state in self.failed_from or not self.may_trigger("fail"):
            self.log.error(
                "worker_exception",
                state=self.state,
                exceptionType=type(error).__name__,
                wayOut="none",
            )
            self.halted = True
            return
        self.failed_from.add(self.state)
        if self.state == "RUNNING":  # a probe of a step that another invocation owns
            self.log.error(
                "probe_failed",
                exceptionType=type(error).__name__,
                reason=error.message if isinstance(error, StoreUnavailable) else None,
            )
            self.probe_failed = True
            self.trigger("fail")
            return
        if self.state == "RUNNING_finalize":
            self.stranded = error
            if not isinstance(error, StoreUnavailable):  # that one is logged by finalize itself
                self.log.error(
                    "worker_exception", state=self.state, exceptionType=type(error).__name__
                )
            self.trigger("fail")
            return
        if isinstance(error, StoreUnavailable):
            error = error.as_failure()
        failure = error if isinstance(error, StepFailure) else internal_error(error or Exception())
        if self.failure is None or isinstance(error, StepFailure):
            self.failure = failure
        if not isinstance(error, StepFailure):
            self.log.error("worker_exception", state=self.state, exceptionType=type(error).__name__)
        self.trigger("fail")

"""READY: which step, if any, this invocation should work on (SPEC §3).

Pure domain logic over the flow run as read: no I/O, so it is cheap to run on every event.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.contracts import FlowRun
from engine.errors import NoOp

LLM_REPORT = "LLM_REPORT"


@dataclass(frozen=True)
class Selection:
    """Either one READY step to execute, or RUNNING steps to probe for recovery, or a no-op."""

    execute: str | None = None
    recover: list[str] = field(default_factory=list)
    noop: NoOp | None = None


def select(run: FlowRun, only: str | None = None) -> Selection:
    """`only` narrows the choice to one step id (run-local's `--step-id`)."""
    if run.status != "RUNNING":
        return Selection(noop=NoOp.RUN_NOT_RUNNING)
    steps = run.steps
    ready = sorted(
        step_id
        for step_id, step in steps.items()
        if step.step_type == LLM_REPORT and step.status == "READY" and only in (None, step_id)
    )
    for step_id in ready:
        deps = steps[step_id].dependencies
        # An unknown dependency never becomes SUCCEEDED: claim the step to fail it visibly.
        if any(dep not in steps for dep in deps) or all(
            steps[dep].status == "SUCCEEDED" for dep in deps
        ):
            return Selection(execute=step_id)
    noop = NoOp.DEPENDENCY_NOT_SUCCEEDED if ready else NoOp.NO_READY_STEP
    running = sorted(
        step_id
        for step_id, step in steps.items()
        if step.step_type == LLM_REPORT and step.status == "RUNNING" and only in (None, step_id)
    )
    return Selection(recover=running, noop=noop)

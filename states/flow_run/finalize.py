"""RUNNING.finalize of a step: RUNNING → SUCCEEDED | FAILED, gated on the claim still holding.

Always attempted once a step is claimed. A step already SUCCEEDED or FAILED is never touched
(`already_final`), a newer claim is never finalized (the claim's identity is in the gate), and
the patch sets only the step's own fields by path, never the whole `steps` map (SPEC §4). What
the patch holds is the worker's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine import gates
from engine.errors import NoOp, StoreUnavailable
from engine.lifecycle import Next
from engine.ports import Path
from states.flow_run.claim import step_path
from states.flow_run.source import StepUnit

FINAL = ("SUCCEEDED", "FAILED")


@dataclass(frozen=True)
class Finalized:
    succeeded: bool


def succeeded(result: Finalized) -> bool:
    """Guard: the step was finalized SUCCEEDED."""
    return result.succeeded


def finalize(
    unit: StepUnit,
    fields: dict[str, Any],
    completed: dict[str, Any],
) -> Next:
    """Writes `fields` (relative to the step, dotted; `status` among them) and logs the outcome
    with `completed` as the extra fields of `step_completed` / `step_failed`."""
    status = fields["status"]
    patch: dict[Path, Any] = {step_path(unit, *name.split(".")): v for name, v in fields.items()}
    identity = unit.claim.identity if unit.claim is not None else None
    gate = gates.status_gate(step_path(unit, "status"), frozenset({"RUNNING"}), identity)
    try:
        result = gates.finalize(unit, unit.config.flow_runs_collection, patch, gate)
    except StoreUnavailable:
        unit.log.error("step_finalize_failed", reason="firestore_error", intendedStatus=status)
        raise
    if result.committed:
        if unit.failure is None:
            unit.log.info("step_completed", **completed)
        else:
            unit.log.warning("step_failed", error=unit.failure.as_error(), **completed)
        return "finalized", Finalized(succeeded=unit.failure is None)
    if result.conflict or str(result.observed).startswith("RUNNING"):
        unit.noop = NoOp.FINALIZE_CONFLICT
    elif result.observed in FINAL:
        unit.noop = NoOp.ALREADY_FINAL
    else:
        unit.noop = NoOp.NOT_RUNNING
    unit.log.info("finalize_skipped", reason=str(unit.noop), observedStatus=result.observed)
    return "skipped", None

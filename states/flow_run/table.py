"""The parts of a step lifecycle every flow-run step worker shares: the claim, the probe of an
artifact already written, its adoption, the finalize, and the edges between them.

A worker's table puts its own working states between `probe` and `finalize`; everything a
step needs to be exactly-once (claim gate, split-brain adoption, lease expiry, the finalize's
gate and its stranding) is the same for every worker and declared once, here.
"""

from __future__ import annotations

from engine.lifecycle import Edge, Exit, State

FINALIZE = Exit("fail", "RUNNING_finalize")
LEAVE = Exit("leave", "UNCHANGED")
SUCCEEDED = "states.flow_run.finalize.succeeded"  # guard: finalized as SUCCEEDED


def working(worker: str, name: str, doc: str) -> State:
    """A state doing the step's own work, in `states/<worker>/<name>.py`: any exception there
    finalizes the claimed step FAILED."""
    return State(name, doc, f"states.{worker}.{name}.enter", on_error=FINALIZE)


def claim() -> State:
    return State(
        "claim",
        "READY to RUNNING with an update_time precondition",
        "states.flow_run.claim.enter",
        on_error=Exit("abandon", "UNCHANGED"),
    )


def probe(worker: str, artifact: str) -> State:
    return State(
        "probe",
        f"is the {artifact} already written? (after our claim, or found RUNNING)",
        f"states.{worker}.probe.enter",
        on_error=LEAVE,
        on_error_owned=FINALIZE,
    )


def adopt(worker: str, artifact: str) -> State:
    return State(
        "adopt",
        f"the {artifact} an earlier execution wrote",
        f"states.{worker}.adopt.enter",
        on_error=LEAVE,
        on_error_owned=FINALIZE,
    )


def finalize(worker: str) -> State:
    return State(
        "finalize",
        "RUNNING to SUCCEEDED or FAILED, status- and claim-gated",
        f"states.{worker}.finalize.enter",
        on_error=Exit("strand", "STRANDED"),
    )


def final_states(artifact: str) -> tuple[State, ...]:
    return (
        State("SUCCEEDED", f"{artifact} written and recorded", final=True),
        State("FAILED", "catalogued error recorded on the step", final=True),
        State(
            "UNCHANGED",
            "another invocation owns or finished the step; nothing written",
            final=True,
        ),
        State("STRANDED", "finalize could not be written; left to recovery", final=True),
    )


def edges(first: str) -> tuple[Edge, ...]:
    """The shared edges; `first` is the worker's first working state after the probe."""
    return (
        Edge("start", "READY", "RUNNING_claim"),
        Edge("claimed", "RUNNING_claim", "RUNNING_probe"),
        Edge("lost", "RUNNING_claim", "UNCHANGED"),
        Edge("unknown", "RUNNING_claim", "UNCHANGED"),
        Edge("probe", "RUNNING", "RUNNING_probe"),
        Edge("found", "RUNNING_probe", "RUNNING_adopt"),
        Edge("absent", "RUNNING_probe", f"RUNNING_{first}"),
        Edge("expired", "RUNNING_probe", "RUNNING_finalize"),
        Edge("alive", "RUNNING_probe", "UNCHANGED"),
        Edge("adopted", "RUNNING_adopt", "RUNNING_finalize"),
        Edge("rejected", "RUNNING_adopt", "RUNNING_finalize"),
        Edge("finalized", "RUNNING_finalize", "SUCCEEDED", (SUCCEEDED,)),
        Edge("finalized", "RUNNING_finalize", "FAILED"),
        Edge("skipped", "RUNNING_finalize", "UNCHANGED"),
    )

"""The LLM_REPORT step lifecycle, declared as data: the whole state diagram of the worker.

READY → claim → probe → resolve → assemble → generate → validate → write → finalize, with
the single repair as a loop back to generate, the adoption of a report already written (after
our claim, or for a step found RUNNING), and the lease expiry of stale-step recovery. Every
state names where an exception takes it; `docs/llm_client-lifecycle.md` is drawn from here.
"""

from __future__ import annotations

from engine.lifecycle import Edge, Exit, Lifecycle, State
from states.llm_client.errors import ErrorCode

S = "states.llm_client"
FINALIZE = Exit("fail", "RUNNING_finalize")
LEAVE = Exit("leave", "UNCHANGED")
REPAIRABLE = f"{S}.validate.repairable"  # guard: the single repair was planned
SUCCEEDED = "states.flow_run.finalize.succeeded"  # guard: finalized as SUCCEEDED


def working(name: str, doc: str) -> State:
    """A state doing the step's own work, in `states/llm_client/<name>.py`: any exception
    there finalizes the claimed step FAILED."""
    return State(name, doc, f"{S}.{name}.enter", on_error=FINALIZE)


LIFECYCLE = Lifecycle(
    title="LLM_REPORT step lifecycle",
    internal_error_code=ErrorCode.WORKER_INTERNAL_ERROR,
    states=(
        State("READY", "selected: READY, dependencies SUCCEEDED"),
        State(
            "RUNNING",
            "owned by this invocation once claimed",
            children=(
                State(
                    "claim",
                    "READY to RUNNING with an update_time precondition",
                    "states.flow_run.claim.enter",
                    on_error=Exit("abandon", "UNCHANGED"),
                ),
                State(
                    "probe",
                    "is the report already written? (after our claim, or found RUNNING)",
                    f"{S}.probe.enter",
                    on_error=LEAVE,
                    on_error_owned=FINALIZE,
                ),
                working("resolve", "inputs, llmProfile, prompt and schema registries"),
                working("assemble", "OHLCV, charts and previous reports from GCS"),
                working("generate", "one Gemini generateContent call"),
                working("validate", "JSON parse and registry schema validation"),
                working("reject", "still invalid, no repair left: INVALID_STRUCTURED_OUTPUT"),
                working("write", "create-only report artifact"),
                State(
                    "adopt",
                    "the report an earlier execution wrote",
                    f"{S}.adopt.enter",
                    on_error=LEAVE,
                    on_error_owned=FINALIZE,
                ),
                State(
                    "finalize",
                    "RUNNING to SUCCEEDED or FAILED, status- and claim-gated",
                    f"{S}.finalize.enter",
                    on_error=Exit("strand", "STRANDED"),
                ),
            ),
        ),
        State("SUCCEEDED", "report written and recorded", final=True),
        State("FAILED", "catalogued error recorded on the step", final=True),
        State(
            "UNCHANGED",
            "another invocation owns or finished the step; nothing written",
            final=True,
        ),
        State("STRANDED", "finalize could not be written; left to recovery", final=True),
    ),
    edges=(
        Edge("start", "READY", "RUNNING_claim"),
        Edge("claimed", "RUNNING_claim", "RUNNING_probe"),
        Edge("lost", "RUNNING_claim", "UNCHANGED"),
        Edge("unknown", "RUNNING_claim", "UNCHANGED"),
        Edge("probe", "RUNNING", "RUNNING_probe"),
        Edge("found", "RUNNING_probe", "RUNNING_adopt"),
        Edge("absent", "RUNNING_probe", "RUNNING_resolve"),
        Edge("expired", "RUNNING_probe", "RUNNING_finalize"),
        Edge("alive", "RUNNING_probe", "UNCHANGED"),
        Edge("resolved", "RUNNING_resolve", "RUNNING_assemble"),
        Edge("assembled", "RUNNING_assemble", "RUNNING_generate"),
        Edge("generated", "RUNNING_generate", "RUNNING_validate"),
        Edge("valid", "RUNNING_validate", "RUNNING_write"),
        Edge("invalid", "RUNNING_validate", "RUNNING_generate", (REPAIRABLE,)),
        Edge("invalid", "RUNNING_validate", "RUNNING_reject"),
        Edge("written", "RUNNING_write", "RUNNING_finalize"),
        Edge("adopted", "RUNNING_adopt", "RUNNING_finalize"),
        Edge("rejected", "RUNNING_adopt", "RUNNING_finalize"),
        Edge("finalized", "RUNNING_finalize", "SUCCEEDED", (SUCCEEDED,)),
        Edge("finalized", "RUNNING_finalize", "FAILED"),
        Edge("skipped", "RUNNING_finalize", "UNCHANGED"),
    ),
)

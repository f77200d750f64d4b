"""The LLM_REPORT step lifecycle, declared as data: the whole state diagram of the worker.

READY → claim → probe → resolve → assemble → generate → validate → write → finalize, with
the single repair as a loop back to generate, the adoption of a report already written (after
our claim, or for a step found RUNNING), and the lease expiry of stale-step recovery. Every
state names where an exception takes it; `docs/llm_client-lifecycle.md` is drawn from here.
"""

from __future__ import annotations

from engine.lifecycle import Edge, Lifecycle, State
from states.flow_run import table as step
from states.llm_client.errors import ErrorCode

W = "llm_client"
REPAIRABLE = "states.llm_client.validate.repairable"  # guard: the single repair was planned

LIFECYCLE = Lifecycle(
    title="LLM_REPORT step lifecycle",
    internal_error_code=ErrorCode.WORKER_INTERNAL_ERROR,
    states=(
        State("READY", "selected: READY, dependencies SUCCEEDED"),
        State(
            "RUNNING",
            "owned by this invocation once claimed",
            children=(
                step.claim(),
                step.probe(W, "report"),
                step.working(W, "resolve", "inputs, llmProfile, prompt and schema registries"),
                step.working(W, "assemble", "OHLCV, charts and previous reports from GCS"),
                step.working(W, "generate", "one Gemini generateContent call"),
                step.working(W, "validate", "JSON parse and registry schema validation"),
                step.working(
                    W, "reject", "still invalid, no repair left: INVALID_STRUCTURED_OUTPUT"
                ),
                step.working(W, "write", "create-only report artifact"),
                step.adopt(W, "report"),
                step.finalize(W),
            ),
        ),
        *step.final_states("report"),
    ),
    edges=(
        *step.edges(first="resolve"),
        Edge("resolved", "RUNNING_resolve", "RUNNING_assemble"),
        Edge("assembled", "RUNNING_assemble", "RUNNING_generate"),
        Edge("generated", "RUNNING_generate", "RUNNING_validate"),
        Edge("valid", "RUNNING_validate", "RUNNING_write"),
        Edge("invalid", "RUNNING_validate", "RUNNING_generate", (REPAIRABLE,)),
        Edge("invalid", "RUNNING_validate", "RUNNING_reject"),
        Edge("written", "RUNNING_write", "RUNNING_finalize"),
    ),
)

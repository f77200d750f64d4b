"""The backtest job lifecycle, declared as data: the whole state diagram of the worker.

READY (a queued job, just read) → validate → claim → probe → prices → simulate → result →
finalize. A job breaking §4 is failed from `queued` with no claim; a result already there (our
retry, or a job met RUNNING by an event or the sweeper) is reused instead of running the engine
again; a RUNNING job without a result is failed once its lease is over. Every state names where
an exception takes it; `docs/backtest-lifecycle.md` is drawn from here.
"""

from __future__ import annotations

from engine.lifecycle import Edge, Exit, Lifecycle, State
from states.backtest.errors import ErrorCode

FINALIZE = Exit("fail", "RUNNING_finalize")
LEAVE = Exit("leave", "UNCHANGED")
STRAND = Exit("strand", "STRANDED")
SUCCEEDED = "states.backtest.finalize.succeeded"  # guard: the job was finalized completed


def action(name: str) -> str:
    return f"states.backtest.{name}.enter"


LIFECYCLE = Lifecycle(
    title="Backtest job lifecycle",
    internal_error_code=ErrorCode.ENGINE_ERROR,
    states=(
        State("READY", "a queued job (or its legacy alias), read just now"),
        State(
            "QUEUED",
            "not claimed: nothing of the job is ours yet",
            children=(
                State(
                    "validate",
                    "the job against BACKTEST §4, before any claim",
                    action("validate"),
                    on_error=Exit("fail", "QUEUED_reject"),
                    error_code=ErrorCode.JOB_INVALID,
                ),
                State(
                    "reject",
                    "queued to failed with the violation, status-gated, no claim",
                    action("reject"),
                    on_error=Exit("abandon", "UNCHANGED"),
                    error_code=ErrorCode.FIRESTORE_UNAVAILABLE,
                ),
            ),
        ),
        State(
            "RUNNING",
            "claimed: by this invocation, or found running (an event, the sweeper)",
            children=(
                State(
                    "claim",
                    "queued to running with the lease, update_time precondition",
                    action("claim"),
                    on_error=Exit("abandon", "UNCHANGED"),
                    error_code=ErrorCode.FIRESTORE_UNAVAILABLE,
                ),
                State(
                    "probe",
                    "is the result already there? else: ours to run, or is its lease over?",
                    action("probe"),
                    on_error=LEAVE,
                    on_error_owned=FINALIZE,
                    error_code=ErrorCode.FIRESTORE_UNAVAILABLE,
                ),
                State(
                    "reuse",
                    "an existing result of this job and user completes it (never rewritten)",
                    action("reuse"),
                    on_error=LEAVE,
                    on_error_owned=STRAND,  # a result exists: never fail the job beside it
                    error_code=ErrorCode.RESULT_WRITE_FAILED,
                ),
                State(
                    "prices",
                    "the price path: inline, or the history CSV in Cloud Storage",
                    action("prices"),
                    on_error=FINALIZE,
                    error_code=ErrorCode.HISTORY_UNAVAILABLE,
                ),
                State(
                    "simulate",
                    "engine 1.0.0, at most once per job",
                    action("simulate"),
                    on_error=FINALIZE,
                    error_code=ErrorCode.ENGINE_ERROR,
                ),
                State(
                    "result",
                    "backtestResults/{jobId}, create-only",
                    action("result"),
                    on_error=FINALIZE,
                    error_code=ErrorCode.RESULT_WRITE_FAILED,
                ),
                State(
                    "finalize",
                    "running to completed or failed, gated on status and our claim",
                    action("finalize"),
                    on_error=STRAND,
                ),
            ),
        ),
        State("SUCCEEDED", "completed: the result exists and the job says so", final=True),
        State("FAILED", "failed with a catalogued code and a sanitized message", final=True),
        State("UNCHANGED", "nothing written: another invocation owns or ended the job", final=True),
        State(
            "STRANDED",
            "left running: its outcome could not be recorded or known; the lease ends it",
            final=True,
        ),
    ),
    edges=(
        Edge("start", "READY", "QUEUED_validate"),
        Edge("valid", "QUEUED_validate", "RUNNING_claim"),
        Edge("invalid", "QUEUED_validate", "QUEUED_reject"),
        Edge("rejected", "QUEUED_reject", "FAILED"),
        Edge("skipped", "QUEUED_reject", "UNCHANGED"),
        Edge("claimed", "RUNNING_claim", "RUNNING_probe"),
        Edge("lost", "RUNNING_claim", "UNCHANGED"),
        Edge("unknown", "RUNNING_claim", "UNCHANGED"),
        Edge("probe", "RUNNING", "RUNNING_probe"),
        Edge("found", "RUNNING_probe", "RUNNING_reuse"),
        Edge("absent", "RUNNING_probe", "RUNNING_prices"),
        Edge("expired", "RUNNING_probe", "RUNNING_finalize"),
        Edge("alive", "RUNNING_probe", "UNCHANGED"),
        Edge("reused", "RUNNING_reuse", "RUNNING_finalize"),
        Edge("conflict", "RUNNING_reuse", "RUNNING_finalize"),
        Edge("priced", "RUNNING_prices", "RUNNING_simulate"),
        Edge("simulated", "RUNNING_simulate", "RUNNING_result"),
        Edge("created", "RUNNING_result", "RUNNING_finalize"),
        Edge("exists", "RUNNING_result", "RUNNING_reuse"),
        Edge("unknown", "RUNNING_result", "STRANDED"),
        Edge("finalized", "RUNNING_finalize", "SUCCEEDED", (SUCCEEDED,)),
        Edge("finalized", "RUNNING_finalize", "FAILED"),
        Edge("skipped", "RUNNING_finalize", "UNCHANGED"),
    ),
)

"""RUNNING.recover: split-brain recovery (SPEC §5).

A RUNNING step whose deterministic artifact exists was executed to the end but not finalized;
it is finalized SUCCEEDED from that object, without calling the model or rewriting the object.
"""

from __future__ import annotations

from typing import Any

import msgspec

from engine.clock import parse_rfc3339
from engine.ports import LLMResponse
from engine.step_run import StepRun
from states.write import artifact_uri

ARTIFACT_READ_LIMIT = 16 * 1024 * 1024


def _uri(run: StepRun) -> str | None:
    timeframe = run.step.timeframe
    if not timeframe or "/" in timeframe:
        return None
    return artifact_uri(run.config, run.run_id, timeframe, run.step_id)


def artifact_exists(run: StepRun) -> bool:
    """Guard: only a step whose report object is already there may be adopted."""
    uri = _uri(run)
    return uri is not None and run.ports.blobs.exists(uri)


def enter(run: StepRun) -> None:
    uri = _uri(run)
    assert uri is not None
    run.gcs_uri = uri
    run.reused = True
    timing = (run.step.outputs.get("execution") or {}).get("timing") or {}
    started = timing.get("startedAt")
    run.started_at = parse_rfc3339(started) if isinstance(started, str) else None
    run.response = llm_metadata(run.ports.blobs.read(uri, ARTIFACT_READ_LIMIT))
    run.log.info("step_recovered_from_artifact", gcsUri=uri)
    run.trigger("adopted")


def llm_metadata(data: bytes) -> LLMResponse | None:
    """What the artifact recorded about the model call, for `outputs.execution.llm`."""
    try:
        llm: Any = msgspec.json.decode(data)["metadata"]["llm"]
        return LLMResponse(
            text=None,
            finish_reason=llm["finishReason"],
            model_version=llm.get("modelVersion"),
            usage_metadata=llm.get("usageMetadata"),
        )
    except (msgspec.DecodeError, KeyError, TypeError):
        return None

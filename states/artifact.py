"""Where a step's report lives: one deterministic object per run, timeframe and step (SPEC §11)."""

from __future__ import annotations

from engine.config import WorkerConfig


def artifact_uri(config: WorkerConfig, run_id: str, timeframe: str, step_id: str) -> str:
    """`gs://<bucket>/<prefix>/<runId>/<timeframe>/<stepId>.json`, prefix normalized."""
    parts = [p for p in config.artifacts_prefix.strip().split("/") if p.strip()]
    parts += [run_id, timeframe, f"{step_id}.json"]
    return f"gs://{config.artifacts_bucket}/" + "/".join(parts)

"""What every flow-run step worker reads first from its environment (COMMON.md §6)."""

from __future__ import annotations

from engine.config import Common, Env

LEASE_VARIABLE = "STALE_STEP_LEASE_SECONDS"


def step_settings(
    env: Env, *, invocation_timeout_s: float, finalize_budget_s: float, lease_margin_s: float
) -> tuple[str, Common]:
    """The artifacts bucket (required: a step worker always writes one) and the shared part,
    whose stale-step lease is `STALE_STEP_LEASE_SECONDS` (default: timeout + margin)."""
    bucket = env.bucket("ARTIFACTS_BUCKET")
    assert bucket is not None  # required: `Env.bucket` raises when it is missing
    common = Common.read(
        env,
        invocation_timeout_s=invocation_timeout_s,
        finalize_budget_s=finalize_budget_s,
        lease_variable=LEASE_VARIABLE,
        lease_default_margin_s=lease_margin_s,
    )
    return bucket, common

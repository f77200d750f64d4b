"""The LLM worker's configuration (SPEC §14), read once per instance.

Errors name the variable, never its value: a misplaced secret must not reach the logs through a
validation message. The key itself is held where `repr` cannot print it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from engine.config import Common, ConfigError, Env
from states.flow_run.config import step_settings

INVOCATION_TIMEOUT_S = 780.0
FINALIZE_BUDGET_S = 120.0
LEASE_MARGIN_S = 120.0  # default STALE_STEP_LEASE_SECONDS = invocation timeout + 120 s


@dataclass(frozen=True)
class GeminiAuth:
    """The active API key; `repr` hides it so it can never be printed by accident."""

    mode: str  # "single" | "rotation" | "replay" (run-local without a key)
    key_id: str | None
    api_key: str = field(repr=False)


@dataclass(frozen=True)
class LlmConfig:
    common: Common
    artifacts_bucket: str
    gemini: GeminiAuth
    gcp_region: str | None = None
    flow_runs_collection: str = "flow_runs"
    prompts_collection: str = "llm_prompts"
    schemas_collection: str = "llm_schemas"
    artifacts_prefix: str = ""
    allowed_models: tuple[str, ...] = ()
    gemini_timeout_s: float = 600.0

    @property
    def secrets(self) -> tuple[str, ...]:
        """Values the logger must never let through (its value gate)."""
        return (self.gemini.api_key,) if self.gemini.api_key else ()

    @classmethod
    def from_env(cls, environ: Mapping[str, str], *, keyless: bool = False) -> LlmConfig:
        """`keyless`: run-local replaying cassettes needs no key, so none is required."""
        env = Env(environ)
        bucket, common = step_settings(
            env,
            invocation_timeout_s=INVOCATION_TIMEOUT_S,
            finalize_budget_s=FINALIZE_BUDGET_S,
            lease_margin_s=LEASE_MARGIN_S,
        )
        allowed = tuple(
            model.strip() for model in (env.text("GEMINI_ALLOWED_MODELS") or "").split(",")
        )
        return cls(
            common=common,
            artifacts_bucket=bucket,
            gemini=GeminiAuth("replay", None, "") if keyless else gemini_auth(env),
            gcp_region=env.text("GCP_REGION"),
            flow_runs_collection=env.collection("FLOW_RUNS_COLLECTION", "flow_runs"),
            prompts_collection=env.collection("LLM_PROMPTS_COLLECTION", "llm_prompts"),
            schemas_collection=env.collection("LLM_SCHEMAS_COLLECTION", "llm_schemas"),
            artifacts_prefix=env.prefix("ARTIFACTS_PREFIX"),
            allowed_models=tuple(model for model in allowed if model),
            gemini_timeout_s=env.seconds("GEMINI_TIMEOUT_SECONDS", 600.0),
        )


def gemini_auth(env: Env) -> GeminiAuth:
    keys = env.json("GEMINI_API_KEYS_JSON")
    if keys is not None:
        if (
            not isinstance(keys, dict)
            or not keys
            or not all(
                isinstance(k, str) and isinstance(v, str) and v.strip() for k, v in keys.items()
            )
        ):
            raise ConfigError(
                "GEMINI_API_KEYS_JSON", "must be a non-empty JSON object of key id to key"
            )
        key_id = env.text("GEMINI_API_KEY_ID")
        if not key_id:
            raise ConfigError("GEMINI_API_KEY_ID", "is required with GEMINI_API_KEYS_JSON")
        if key_id not in keys:
            raise ConfigError("GEMINI_API_KEY_ID", "names no key in GEMINI_API_KEYS_JSON")
        return GeminiAuth(mode="rotation", key_id=key_id, api_key=keys[key_id].strip())
    single = env.text("GEMINI_API_KEY")
    if not single:
        raise ConfigError("GEMINI_API_KEY", "or GEMINI_API_KEYS_JSON is required")
    return GeminiAuth(mode="single", key_id=None, api_key=single)

"""Configuration from the environment (SPEC §14), validated once per instance.

Errors name the variable, never its value: a misplaced secret must not reach the logs through a
validation message.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

from engine.names import object_name_problem

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


class ConfigError(Exception):
    """A configuration variable is missing or malformed; the message names only the variable."""


@dataclass(frozen=True)
class GeminiAuth:
    """The active API key; `repr` hides it so it can never be printed by accident."""

    mode: str  # "single" | "rotation"
    key_id: str | None
    api_key: str = field(repr=False)


@dataclass(frozen=True)
class WorkerConfig:
    artifacts_bucket: str
    gemini: GeminiAuth
    gcp_project: str | None = None
    gcp_region: str | None = None
    firestore_database: str = "(default)"
    flow_runs_collection: str = "flow_runs"
    prompts_collection: str = "llm_prompts"
    schemas_collection: str = "llm_schemas"
    artifacts_prefix: str = ""
    allowed_models: tuple[str, ...] = ()
    gemini_timeout_s: float = 600.0
    finalize_budget_s: float = 120.0
    invocation_timeout_s: float = 780.0
    log_level: str = "INFO"
    env: str = "dev"
    stale_lease_s: float = 900.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> WorkerConfig:
        def text(name: str, default: str | None = None) -> str | None:
            value = environ.get(name, "").strip()
            return value or default

        def seconds(name: str, default: float) -> float:
            raw = text(name)
            if raw is None:
                return default
            try:
                value = float(raw)
            except ValueError:
                raise ConfigError(f"{name} must be a number of seconds") from None
            if value <= 0:
                raise ConfigError(f"{name} must be positive")
            return value

        def collection(name: str, default: str) -> str:
            value = text(name, default) or default
            if "/" in value:
                raise ConfigError(f"{name} must not contain '/'")
            return value

        bucket = text("ARTIFACTS_BUCKET")
        if bucket is None:
            raise ConfigError("ARTIFACTS_BUCKET is required")
        bucket = bucket.removeprefix("gs://").strip("/")
        if not bucket or "/" in bucket:
            raise ConfigError("ARTIFACTS_BUCKET must be a bucket name")

        prefix = text("ARTIFACTS_PREFIX", "") or ""
        if prefix.strip("/") and object_name_problem(prefix.strip("/")) is not None:
            raise ConfigError("ARTIFACTS_PREFIX must be a safe object name prefix")

        log_level = (text("LOG_LEVEL", "INFO") or "INFO").upper()
        if log_level not in LOG_LEVELS:
            raise ConfigError("LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR")

        finalize_budget = seconds("FINALIZE_BUDGET_SECONDS", 120.0)
        invocation_timeout = seconds("INVOCATION_TIMEOUT_SECONDS", 780.0)
        if finalize_budget >= invocation_timeout:
            raise ConfigError(
                "FINALIZE_BUDGET_SECONDS must be smaller than INVOCATION_TIMEOUT_SECONDS"
            )

        # A claimed step outlives its invocation only if that invocation died: the lease must
        # outlast the invocation timeout by a margin (COMMON.md §5), or live executions would
        # be failed.
        lease = seconds("STALE_STEP_LEASE_SECONDS", invocation_timeout + 120.0)
        if lease < invocation_timeout + 60.0:
            raise ConfigError(
                "STALE_STEP_LEASE_SECONDS must exceed INVOCATION_TIMEOUT_SECONDS"
                " by a minute or more"
            )

        allowed = tuple(
            model.strip()
            for model in (text("GEMINI_ALLOWED_MODELS") or "").split(",")
            if model.strip()
        )
        return cls(
            artifacts_bucket=bucket,
            gemini=_gemini_auth(environ),
            gcp_project=text("GCP_PROJECT") or text("GOOGLE_CLOUD_PROJECT"),
            gcp_region=text("GCP_REGION"),
            firestore_database=text("FIRESTORE_DATABASE", "(default)") or "(default)",
            flow_runs_collection=collection("FLOW_RUNS_COLLECTION", "flow_runs"),
            prompts_collection=collection("LLM_PROMPTS_COLLECTION", "llm_prompts"),
            schemas_collection=collection("LLM_SCHEMAS_COLLECTION", "llm_schemas"),
            artifacts_prefix=prefix,
            allowed_models=allowed,
            gemini_timeout_s=seconds("GEMINI_TIMEOUT_SECONDS", 600.0),
            finalize_budget_s=finalize_budget,
            invocation_timeout_s=invocation_timeout,
            log_level=log_level,
            env=text("ENV", "dev") or "dev",
            stale_lease_s=lease,
        )


def _gemini_auth(environ: Mapping[str, str]) -> GeminiAuth:
    keys_json = environ.get("GEMINI_API_KEYS_JSON", "").strip()
    if keys_json:
        try:
            keys = json.loads(keys_json)
        except ValueError:
            raise ConfigError(
                "GEMINI_API_KEYS_JSON must be a JSON object of key id to key"
            ) from None
        if (
            not isinstance(keys, dict)
            or not keys
            or not all(
                isinstance(k, str) and isinstance(v, str) and v.strip() for k, v in keys.items()
            )
        ):
            raise ConfigError(
                "GEMINI_API_KEYS_JSON must be a non-empty JSON object of key id to key"
            )
        key_id = environ.get("GEMINI_API_KEY_ID", "").strip()
        if not key_id:
            raise ConfigError("GEMINI_API_KEY_ID is required with GEMINI_API_KEYS_JSON")
        if key_id not in keys:
            raise ConfigError("GEMINI_API_KEY_ID names no key in GEMINI_API_KEYS_JSON")
        return GeminiAuth(mode="rotation", key_id=key_id, api_key=keys[key_id].strip())
    single = environ.get("GEMINI_API_KEY", "").strip()
    if not single:
        raise ConfigError("GEMINI_API_KEY or GEMINI_API_KEYS_JSON is required")
    return GeminiAuth(mode="single", key_id=None, api_key=single)

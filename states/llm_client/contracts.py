"""The documents the LLM worker reads and writes, as msgspec Structs (SPEC §7-§11).

Structs that are an allowlist by contract (the llmProfile) forbid unknown fields; the others
tolerate them (other components own those documents) and type only the subset read here.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, Struct, field

PROMPT_ID_RE = re.compile(
    r"^llm_prompt_[1-9][0-9]*[A-Za-z]+_(report|reco)(?:_[a-z0-9]{1,24})?_v[1-9][0-9]*_(?:0|[1-9][0-9]*)$"
)
SCHEMA_ID_RE = re.compile(
    r"^llm_schema_[1-9][0-9]*[A-Za-z]+_(report|reco)(?:_[a-z0-9]{1,24})?_v([1-9][0-9]*)_(?:0|[1-9][0-9]*)$"
)
ID_MAX_LEN = 128

JsonObject = dict[str, Any]
NonEmpty = Annotated[str, Meta(min_length=1)]


# --- LLM_REPORT inputs -------------------------------------------------------------------------


class StructuredOutputSpec(Struct, rename="camel", kw_only=True, forbid_unknown_fields=True):
    schema_id: str
    kind: str | None = None
    schema_sha256: str | None = None


class ThinkingConfig(Struct, rename="camel", kw_only=True, forbid_unknown_fields=True):
    include_thoughts: bool | None = None
    thinking_level: str | int | None = None


class LLMProfile(
    Struct, rename="camel", kw_only=True, forbid_unknown_fields=True, omit_defaults=True
):
    """The authoritative request configuration; its keys are an allowlist (SPEC §7)."""

    model_name: str | None = None
    model: str | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    max_output_tokens: int | None = None
    stop_sequences: list[str] | None = None
    candidate_count: int | None = None
    response_mime_type: str | None = None
    structured_output: StructuredOutputSpec | None = None
    response_schema: JsonObject | None = None
    json_schema: JsonObject | None = None
    thinking_config: ThinkingConfig | None = None

    @property
    def effective_model(self) -> str | None:
        return self.model_name or self.model


class PreviousReportRef(Struct, kw_only=True):
    step_id: str | None = field(name="stepId", default=None)
    gcs_uri: str | None = None


class LLMReportInputs(Struct, rename="camel", kw_only=True):
    """`steps.<id>.inputs` of an LLM_REPORT step, minus `llm` (decoded in two stages)."""

    ohlcv_step_id: NonEmpty
    charts_manifest_step_id: NonEmpty
    previous_report_step_ids: list[NonEmpty] = []
    previous_reports: list[PreviousReportRef] = []


# --- registries ----------------------------------------------------------------------------------


class LLMPrompt(Struct, rename="camel", kw_only=True):
    """`llm_prompts/{promptId}`: used as-is, no templating."""

    schema_version: Literal[1]
    system_instruction: NonEmpty
    user_prompt: NonEmpty


class LLMSchema(Struct, rename="camel", kw_only=True):
    """`llm_schemas/{schemaId}`: the single source of truth for structured output."""

    json_schema: JsonObject
    kind: str = "LLM_REPORT_OUTPUT"
    schema_id: str | None = None
    sha256: str | None = None


# --- chart export manifest -----------------------------------------------------------------------


class ChartItem(Struct, rename="camel", kw_only=True):
    chart_template_id: str | None = None
    kind: str | None = None
    png_gcs_uri: str | None = field(name="png_gcs_uri", default=None)

    @property
    def description(self) -> str:
        return self.kind or self.chart_template_id or "chart"


class ChartsManifest(Struct, kw_only=True):
    items: list[ChartItem] = []


# --- the report artifact -------------------------------------------------------------------------


class ReportLLM(Struct, rename="camel", kw_only=True, omit_defaults=True):
    prompt_id: str
    model_name: str
    finish_reason: str
    schema_id: str | None = None
    schema_sha256: str | None = None
    llm_profile: JsonObject | None = None
    model_version: str | None = None
    usage_metadata: JsonObject | None = None


class ReportInputs(Struct, kw_only=True, omit_defaults=True):
    ohlcv_gcs_uri: str
    charts_outputsManifestGcsUri: str
    report_gcs_uris: list[str] | None = None


class ReportMetadata(Struct, rename="camel", kw_only=True):
    schema_version: int
    run_id: str
    step_id: str
    created_at: str
    finished_at: str
    symbol: str
    timeframe: str
    llm: ReportLLM
    inputs: ReportInputs


class LLMReportFile(Struct, kw_only=True):
    """`contracts/llm_report_file.schema.json`: worker-owned metadata + model-owned output."""

    metadata: ReportMetadata
    output: JsonObject


def to_builtins(value: Any) -> Any:
    """Plain JSON values of a Struct, for Firestore writes and logs."""
    return msgspec.to_builtins(value)

"""RUNNING.assemble: the context the model sees (SPEC §9).

Artifacts are fetched by the worker, never by the model, and each is bounded before it is read
in full: at most limit + 1 bytes cross the wire, so an oversized input costs nothing to reject.
"""

from __future__ import annotations

import json
import time
from typing import Any

import msgspec

from engine import jsontext
from engine.clock import elapsed_ms
from engine.errors import Failure
from engine.lifecycle import Next
from engine.ports import BlobNotFound, BlobTooLarge, BlobUndecodable
from states.flow_run.contracts import Step
from states.llm_client.contracts import ChartItem, ChartsManifest, LLMReportInputs
from states.llm_client.errors import ErrorCode
from states.llm_client.phases import Assembled, Context, Resolved
from states.llm_client.unit import LLM_REPORT, LlmUnit, step

JSON_LIMIT = 65536
IMAGE_LIMIT = 262144
# Memory per step is bounded by what is held at once: a manifest may list any number of items
# (or one image a thousand times), so images are counted and summed before the model call.
MAX_IMAGES = 16
MAX_IMAGE_BYTES = 15 * 1024 * 1024
MAX_PREVIOUS_REPORTS = 8  # each up to JSON_LIMIT, all of them in the prompt (tokens are paid)

TASK = (
    "<task>\n"
    "Based on the context above, perform the analysis for `symbol`, `timeframe` defined in the"
    " System Instructions.\n"
    "Generate the full report in JSON.\n"
    "</task>"
)


def enter(unit: LlmUnit, resolved: Resolved) -> Next:
    current = step(unit)
    inputs = llm_report_inputs(current)
    ohlcv_uri = output_uri(unit, inputs.ohlcv_step_id, "ohlcvStepId", legacy=False)
    manifest_uri = output_uri(
        unit, inputs.charts_manifest_step_id, "chartsManifestStepId", legacy=True
    )
    report_refs = previous_reports(unit, inputs)
    unit.log.info(
        "context_resolve_started",
        ohlcvGcsUri=ohlcv_uri,
        chartsManifestGcsUri=manifest_uri,
        previousReports=len(report_refs),
    )

    ohlcv = read_json(unit, ohlcv_uri, "ohlcv")
    manifest = decode_manifest(read_json(unit, manifest_uri, "charts_manifest"), manifest_uri)
    charts = distinct_charts(manifest.items)
    unit.log.info("charts_manifest_parsed", items=len(manifest.items), images=len(charts))
    if not charts:
        unit.log.warning("charts_manifest_no_images", chartsManifestGcsUri=manifest_uri)
    if len(charts) > MAX_IMAGES:
        raise Failure(
            ErrorCode.INVALID_STEP_INPUTS,
            f"charts manifest lists {len(charts)} distinct images; at most {MAX_IMAGES} per step",
        )
    images = read_images(unit, charts)
    reports = [(label, uri, read_json(unit, uri, "previous_report")) for label, uri in report_refs]

    user_text = (
        resolved.prompt.user_prompt
        + "\n\n"
        + user_input(timeframe=current.timeframe or "", ohlcv=ohlcv, charts=charts, reports=reports)
    )
    context = Context(
        user_text=user_text,
        images=images,
        ohlcv_uri=ohlcv_uri,
        manifest_uri=manifest_uri,
        report_uris=[uri for _, uri in report_refs],
    )
    unit.log.info(
        "user_input_built",
        textBytes=len(user_text.encode()),
        images=len(images),
        previousReports=len(reports),
    )
    unit.log.info("context_resolve_finished")
    return "assembled", Assembled(resolved, context)


def llm_report_inputs(step: Step) -> LLMReportInputs:
    try:
        return msgspec.convert(step.inputs, LLMReportInputs)
    except msgspec.ValidationError as exc:
        message = str(exc).replace("$.", "inputs.").replace("$", "inputs")
        raise Failure(ErrorCode.INVALID_STEP_INPUTS, f"step inputs invalid: {message}") from None


def output_uri(unit: LlmUnit, step_id: str, field: str, *, legacy: bool) -> str:
    """The `gs://` output of an upstream step (charts may use the legacy manifest alias)."""
    source = unit.doc.steps.get(step_id)
    if source is None:
        raise Failure(ErrorCode.INVALID_STEP_INPUTS, f"inputs.{field} names unknown step {step_id}")
    uri = source.gcs_uri
    if uri is None and legacy:
        alias = source.outputs.get("outputsManifestGcsUri")
        uri = alias if isinstance(alias, str) and alias else None
    if uri is None or not uri.startswith("gs://"):
        raise Failure(ErrorCode.INVALID_STEP_INPUTS, f"step {step_id} has no outputs.gcs_uri")
    return uri


def previous_reports(unit: LlmUnit, inputs: LLMReportInputs) -> list[tuple[str, str]]:
    """(label, uri) of each previous report, in input order; `gcs_uri` wins over `stepId`."""
    count = len(inputs.previous_report_step_ids) + len(inputs.previous_reports)
    if count > MAX_PREVIOUS_REPORTS:
        raise Failure(
            ErrorCode.INVALID_STEP_INPUTS,
            f"{count} previous reports; at most {MAX_PREVIOUS_REPORTS} per step",
        )
    refs = [(sid, report_step_uri(unit, sid)) for sid in inputs.previous_report_step_ids]
    for index, ref in enumerate(inputs.previous_reports):
        if ref.gcs_uri:
            if not ref.gcs_uri.startswith("gs://"):
                raise Failure(
                    ErrorCode.INVALID_STEP_INPUTS, f"previousReports[{index}].gcs_uri is not gs://"
                )
            refs.append((ref.step_id or "external", ref.gcs_uri))
        elif ref.step_id:
            refs.append((ref.step_id, report_step_uri(unit, ref.step_id)))
        else:
            raise Failure(
                ErrorCode.INVALID_STEP_INPUTS, f"previousReports[{index}] needs stepId or gcs_uri"
            )
    return refs


def report_step_uri(unit: LlmUnit, step_id: str) -> str:
    source = unit.doc.steps.get(step_id)
    if source is None:
        raise Failure(ErrorCode.INVALID_STEP_INPUTS, f"previous report step {step_id} not found")
    if source.step_type != LLM_REPORT:
        raise Failure(
            ErrorCode.INVALID_STEP_INPUTS, f"previous report step {step_id} is not LLM_REPORT"
        )
    if source.gcs_uri is None:
        raise Failure(
            ErrorCode.INVALID_STEP_INPUTS, f"previous report step {step_id} has no outputs.gcs_uri"
        )
    return source.gcs_uri


def read_bounded(unit: LlmUnit, uri: str, kind: str, limit: int) -> bytes:
    unit.budget.require(f"gcs read ({kind})")
    unit.log.info("gcs_read_started", kind=kind, gcsUri=uri)
    started = time.monotonic()
    try:
        data = unit.ports.blobs.read(uri, limit)
    except BlobNotFound:
        raise Failure(ErrorCode.INVALID_STEP_INPUTS, f"{kind} object not found: {uri}") from None
    except BlobUndecodable:
        raise Failure(
            ErrorCode.INVALID_STEP_INPUTS, f"{kind} content encoding does not decode: {uri}"
        ) from None
    except BlobTooLarge:
        event = "chart_image_too_large" if kind == "chart_image" else "context_json_too_large"
        unit.log.warning(event, kind=kind, gcsUri=uri, limitBytes=limit)
        raise Failure(
            ErrorCode.INVALID_STEP_INPUTS, f"{kind} exceeds {limit} bytes: {uri}"
        ) from None
    unit.log.info(
        "gcs_read_finished",
        kind=kind,
        gcsUri=uri,
        bytes=len(data),
        durationMs=elapsed_ms(started),
    )
    return data


def read_json(unit: LlmUnit, uri: str, kind: str) -> Any:
    data = read_bounded(unit, uri, kind, JSON_LIMIT)
    try:
        value = jsontext.loads(data)
    except jsontext.JsonRejected as exc:
        unit.log.warning(
            "context_json_invalid", kind=kind, gcsUri=uri, bytes=len(data), reason=exc.reason
        )
        problem = {
            "invalid": "is not valid JSON",
            "non_finite": "holds NaN or Infinity, which JSON does not allow",
            "too_deep": f"is nested deeper than {jsontext.MAX_DEPTH} levels",
        }[exc.reason]
        raise Failure(ErrorCode.INVALID_STEP_INPUTS, f"{kind} {problem}: {uri}") from None
    unit.log.info("context_json_validated", kind=kind, gcsUri=uri, bytes=len(data))
    return value


def decode_manifest(value: Any, uri: str) -> ChartsManifest:
    try:
        return msgspec.convert(value, ChartsManifest)
    except msgspec.ValidationError:
        raise Failure(
            ErrorCode.INVALID_STEP_INPUTS, f"charts manifest does not match its schema: {uri}"
        ) from None


def distinct_charts(items: list[ChartItem]) -> list[ChartItem]:
    """Items with an image, each image once (the first item naming a URI describes it)."""
    seen: set[str] = set()
    charts: list[ChartItem] = []
    for item in items:
        if item.png_gcs_uri and item.png_gcs_uri not in seen:
            seen.add(item.png_gcs_uri)
            charts.append(item)
    return charts


def read_images(unit: LlmUnit, charts: list[ChartItem]) -> list[bytes]:
    images: list[bytes] = []
    total = 0
    for item in charts:
        images.append(read_image(unit, item))
        total += len(images[-1])
        if total > MAX_IMAGE_BYTES:
            raise Failure(
                ErrorCode.INVALID_STEP_INPUTS,
                f"chart images exceed {MAX_IMAGE_BYTES} bytes in total for one step",
            )
    return images


def read_image(unit: LlmUnit, item: ChartItem) -> bytes:
    assert item.png_gcs_uri is not None
    data = read_bounded(unit, item.png_gcs_uri, "chart_image", IMAGE_LIMIT)
    unit.log.info(
        "chart_image_loaded",
        gcsUri=item.png_gcs_uri,
        bytes=len(data),
        chartTemplateId=item.chart_template_id,
    )
    return data


def compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _block(data_type: str, content: str) -> str:
    return (
        "<context>\n"
        f"  <data_type>{data_type}</data_type>\n"
        "  <content>\n"
        f"    {content}\n"
        "  </content>\n"
        "</context>"
    )


def user_input(
    *, timeframe: str, ohlcv: Any, charts: list[ChartItem], reports: list[tuple[str, str, Any]]
) -> str:
    """The generated UserInput section, exactly in the layout of SPEC §9."""
    blocks = [_block(f"{timeframe} OHLCV Candles (JSON)", compact(ohlcv))]
    if charts:
        lines = "\n    ".join(
            ["[Images attached to this message with description]"]
            + [f"- {item.description}" for item in charts]
        )
        blocks.append(_block("Technical Charts (Images)", lines))
    for label, uri, report in reports:
        blocks.append(_block(f"Previous Report ({label}, uri: {uri}) (JSON)", compact(report)))
    blocks.append(TASK)
    return "\n\n".join(blocks)

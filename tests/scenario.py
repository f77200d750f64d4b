"""Seeded worlds for end-to-end tests: a flow run, its registries and its GCS inputs.

Built from the shared contract files, so the tests exercise the documents other components
really produce.
"""

from __future__ import annotations

import copy
import json
import re
import struct
import zlib
from pathlib import Path
from typing import Any

from tests.contracts import load

BUCKET = "artifacts-bucket"
RUN_ID = "20251224-120000_BTCUSDT_a1b2c"
STEP = "llm_report_1M_month_summary_v1"
OHLCV_STEP = "ohlcv_1M_bigquery_all_v1"
CHARTS_STEP = "charts_1M_default_set_v1"
PROMPT_ID = "llm_prompt_1M_report_v1_0"
SCHEMA_ID = "llm_schema_1M_report_v1_0"
ARTIFACT_URI = f"gs://{BUCKET}/{RUN_ID}/1M/{STEP}.json"
REPORT_OUTPUT = {
    "summary": {"markdown": "BTC monthly: higher-timeframe uptrend intact."},
    "details": {"trend": "bullish", "levels": [42000, 48000]},
}


def png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A real, minimal PNG (solid colour), so the model stub receives genuine image bytes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    row = b"\x00" + bytes(rgb) * width
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(row * height))
        + chunk(b"IEND", b"")
    )


CHART_PNGS = {
    f"gs://{BUCKET}/charts/{RUN_ID}/{CHARTS_STEP}/price.png": png(8, 6, (10, 200, 30)),
    f"gs://{BUCKET}/charts/{RUN_ID}/{CHARTS_STEP}/rsi.png": png(6, 4, (200, 20, 30)),
}
OHLCV = {
    "symbol": "BTCUSDT",
    "timeframe": "1M",
    "candles": [[1704067200000, 42000.5, 48000, 38555, 42500.1, 12345.6]],
}


def flow_run() -> dict[str, Any]:
    """The contract's READY vector, with the structured output schema SPEC §7 requires."""
    doc: dict[str, Any] = copy.deepcopy(load("test_vectors/inputs/flow_run.ready_llm_report.json"))
    doc["steps"][STEP]["inputs"]["llm"]["llmProfile"]["structuredOutput"] = {
        "schemaId": SCHEMA_ID,
        "kind": "LLM_REPORT_OUTPUT",
    }
    return doc


def manifest() -> dict[str, Any]:
    base = load("chart_export/test_vectors/expected_manifest.json")
    item = base["items"][0]
    kinds = ["price + MA12/26 + Volume", "RSI 14 + StochRSI"]
    items = [
        {**item, "kind": kind, "png_gcs_uri": uri}
        for kind, uri in zip(kinds, CHART_PNGS, strict=True)
    ]
    return {**base, "runId": RUN_ID, "stepId": CHARTS_STEP, "items": items}


def upload(gcs: Any, uri: str, data: bytes, content_type: str = "application/json") -> None:
    bucket, _, name = uri[5:].partition("/")
    gcs.bucket(bucket).blob(name).upload_from_string(data, content_type=content_type)


def seed(db: Any, gcs: Any, doc: dict[str, Any] | None = None) -> dict[str, Any]:
    doc = flow_run() if doc is None else doc
    db.collection("flow_runs").document(RUN_ID).set(doc)
    db.collection("llm_prompts").document(PROMPT_ID).set(load("examples/llm_prompt.example.json"))
    db.collection("llm_schemas").document(SCHEMA_ID).set(load("examples/llm_schema.example.json"))
    if not gcs.bucket(BUCKET).exists():
        gcs.create_bucket(BUCKET)
    steps = flow_run()["steps"]  # inputs live where the contract vector says, whatever doc says
    upload(gcs, steps[OHLCV_STEP]["outputs"]["gcs_uri"], json.dumps(OHLCV).encode())
    upload(gcs, steps[CHARTS_STEP]["outputs"]["gcs_uri"], json.dumps(manifest()).encode())
    for uri, data in CHART_PNGS.items():
        upload(gcs, uri, data, "image/png")
    return doc


def objects(gcs: Any) -> dict[str, bytes]:
    return {
        f"gs://{BUCKET}/{blob.name}": blob.download_as_bytes() for blob in gcs.list_blobs(BUCKET)
    }


def step_of(db: Any, step_id: str = STEP) -> dict[str, Any]:
    data: dict[str, Any] = db.collection("flow_runs").document(RUN_ID).get().to_dict()
    step: dict[str, Any] = data["steps"][step_id]
    return step


class Journal:
    """The function's committed Firestore writes (see WORKER_WRITE_JOURNAL in entry.py)."""

    def __init__(self, path: Path):
        self.path = path
        path.touch()

    def mark(self) -> int:
        return self.path.stat().st_size

    def since(self, mark: int) -> list[dict[str, Any]]:
        with self.path.open("rb") as source:
            source.seek(mark)
            return [json.loads(line) for line in source.read().splitlines() if line.strip()]


_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")


def normalized(value: Any) -> Any:
    """Timestamps and durations replaced by placeholders, so snapshots are stable."""
    if isinstance(value, dict):
        return {
            k: ("<durationMs>" if k == "durationMs" else normalized(v)) for k, v in value.items()
        }
    if isinstance(value, list):
        return [normalized(v) for v in value]
    if isinstance(value, str) and _TIMESTAMP.match(value):
        return "<timestamp>"
    return value


def report_text(output: dict[str, Any] | None = None) -> str:
    return json.dumps(REPORT_OUTPUT if output is None else output)

"""A local dataset laid out as folders: the shape `run-local`, `dev up` and the demo share.

    <root>/flow_run.json                      the flow run document (its runId names it)
    <root>/llm_prompts/<promptId>.json        prompt registry
    <root>/llm_schemas/<schemaId>.json        schema registry
    <root>/chart_templates/<templateId>.json  chart templates (a CHART_EXPORT step's inputs)
    <root>/gcs/<bucket>/<object path>         what `gs://<bucket>/<object path>` holds
    <root>/cassettes/<key>.json               recorded Gemini responses (run-local)

The shipped examples are `examples/local/` (one LLM_REPORT step, its charts already made) and
`examples/pipeline/` (a CHART_EXPORT step feeding an LLM_REPORT step: what `dev up` seeds).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devstack import REPO_ROOT

DEFAULT_EXAMPLE = REPO_ROOT / "examples" / "local"
PIPELINE_EXAMPLE = REPO_ROOT / "examples" / "pipeline"


@dataclass(frozen=True)
class Example:
    root: Path
    flow_run: dict[str, Any]
    prompts: dict[str, dict[str, Any]]
    schemas: dict[str, dict[str, Any]]
    objects: dict[str, bytes]
    templates: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def run_id(self) -> str:
        return str(self.flow_run["runId"])


def _documents(folder: Path) -> dict[str, dict[str, Any]]:
    if not folder.is_dir():
        return {}
    return {
        p.stem: json.loads(p.read_text(encoding="utf-8")) for p in sorted(folder.glob("*.json"))
    }


def load_example(root: Path = DEFAULT_EXAMPLE, flow_run: Path | None = None) -> Example:
    gcs = root / "gcs"
    objects = (
        {
            "gs://" + path.relative_to(gcs).as_posix(): path.read_bytes()
            for path in sorted(gcs.rglob("*"))
            if path.is_file()
        }
        if gcs.is_dir()
        else {}
    )
    return Example(
        root=root,
        flow_run=json.loads((flow_run or root / "flow_run.json").read_text(encoding="utf-8")),
        prompts=_documents(root / "llm_prompts"),
        schemas=_documents(root / "llm_schemas"),
        objects=objects,
        templates=_documents(root / "chart_templates"),
    )


def seed(example: Example, db: Any, gcs: Any, collection: str = "flow_runs") -> None:
    """Writes the example into a Firestore (emulator) and a GCS (fake-gcs) client."""
    for prompt_id, doc in example.prompts.items():
        db.collection("llm_prompts").document(prompt_id).set(doc)
    for schema_id, doc in example.schemas.items():
        db.collection("llm_schemas").document(schema_id).set(doc)
    for template_id, doc in example.templates.items():
        db.collection("chart_templates").document(template_id).set(doc)
    for uri, data in example.objects.items():
        bucket_name, _, name = uri[5:].partition("/")
        bucket = gcs.bucket(bucket_name)
        if not bucket.exists():
            bucket = gcs.create_bucket(bucket_name)
        content_type = "image/png" if name.endswith(".png") else "application/json"
        bucket.blob(name).upload_from_string(data, content_type=content_type)
    db.collection(collection).document(example.run_id).set(example.flow_run)

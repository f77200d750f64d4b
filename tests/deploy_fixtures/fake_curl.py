"""A stand-in for `curl` used by tests/test_deploy_scripts.py: a tiny Firestore REST API.

Understands the calls deploy/smoke.sh makes (-X, -H/-H @file, -o, -w '%{http_code}',
--data-binary @file, one URL). Documents live in $FAKE_STATE_DIR/docs; each call is appended to
$FAKE_LOG. Environment:
  FAKE_EXISTING_DOCS   comma list of registry documents that exist ("llm_prompts/<id>,...")
  FAKE_WORKER          "ok": an updatedAt patch runs a simulated worker on the READY LLM_REPORT
                       step (SUCCEEDED when its prompt exists, else FAILED/PROMPT_NOT_FOUND);
                       anything else leaves the document alone
  FAKE_BUCKET          bucket of the simulated report artifact
Every created flow run is also kept, decoded to plain JSON, in $FAKE_STATE_DIR/created/.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

TOKEN = "fake-access-token"


def to_value(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"booleanValue": value}
    if isinstance(value, int):
        return {"integerValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, str):
        return {"stringValue": value}
    if isinstance(value, list):
        return {"arrayValue": {"values": [to_value(v) for v in value]}}
    if isinstance(value, dict):
        return {"mapValue": {"fields": {k: to_value(v) for k, v in value.items()}}}
    return {"nullValue": None}


def from_value(value: dict[str, Any]) -> Any:
    kind, raw = next(iter(value.items()))
    if kind == "mapValue":
        return {k: from_value(v) for k, v in raw.get("fields", {}).items()}
    if kind == "arrayValue":
        return [from_value(v) for v in raw.get("values", [])]
    if kind == "integerValue":
        return int(raw)
    return raw


def simulate_worker(run: dict[str, Any]) -> None:
    existing = set(filter(None, os.environ.get("FAKE_EXISTING_DOCS", "").split(",")))
    for step_id, step in sorted(run.get("steps", {}).items()):
        if step.get("stepType") != "LLM_REPORT" or step.get("status") != "READY":
            continue
        prompt = step["inputs"]["llm"]["promptId"]
        if f"llm_prompts/{prompt}" in existing:
            bucket = os.environ.get("FAKE_BUCKET", "bucket")
            report = f"{bucket}/{run['runId']}/{step['timeframe']}/{step_id}.json"
            objects = Path(os.environ["FAKE_STATE_DIR"]) / "objects"
            objects.mkdir(parents=True, exist_ok=True)
            (objects / report.replace("/", "__")).write_text("{}", encoding="utf-8")
            step["status"] = "SUCCEEDED"
            step["outputs"] = {"gcs_uri": f"gs://{report}"}
        else:
            step["status"] = "FAILED"
            step["error"] = {"code": "PROMPT_NOT_FOUND", "message": "prompt not found"}


def handle(method: str, url: str, headers: list[str], body: bytes | None) -> tuple[int, Any]:
    if f"Authorization: Bearer {TOKEN}" not in headers:
        return 401, {"error": {"code": 401, "message": "missing credentials"}}
    state = Path(os.environ["FAKE_STATE_DIR"])
    docs = state / "docs"
    docs.mkdir(parents=True, exist_ok=True)
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    path = parts.path.split("/documents/", 1)[1]
    not_found = {"error": {"code": 404, "message": "not found"}}

    if method == "POST":
        doc_path = f"{path}/{query['documentId'][0]}"
        target = docs / doc_path.replace("/", "__")
        if target.exists():
            return 409, {"error": {"code": 409, "message": "already exists"}}
        document = json.loads(body or b"{}")
        target.write_text(json.dumps(document), encoding="utf-8")
        created = state / "created"
        created.mkdir(exist_ok=True)
        plain = from_value({"mapValue": document})
        (created / f"{query['documentId'][0]}.json").write_text(json.dumps(plain), "utf-8")
        return 200, document

    target = docs / path.replace("/", "__")
    existing = set(filter(None, os.environ.get("FAKE_EXISTING_DOCS", "").split(",")))
    if method == "GET":
        if target.exists():
            return 200, json.loads(target.read_text(encoding="utf-8"))
        if path in existing:
            return 200, {"name": path, "fields": {}}
        return 404, not_found
    if method == "PATCH":
        if not target.exists():
            return 404, not_found
        document = json.loads(target.read_text(encoding="utf-8"))
        patch = json.loads(body or b"{}")
        for field in query.get("updateMask.fieldPaths", []):
            document["fields"][field] = patch["fields"][field]
        if os.environ.get("FAKE_WORKER") == "ok":
            run = from_value({"mapValue": document})
            simulate_worker(run)
            document = {"fields": to_value(run)["mapValue"]["fields"]}
        target.write_text(json.dumps(document), encoding="utf-8")
        return 200, document
    if method == "DELETE":
        target.unlink(missing_ok=True)
        return 200, {}
    return 400, {"error": {"code": 400, "message": f"unsupported {method}"}}


def main(args: list[str]) -> int:
    method, url, output, write_out, body = "GET", "", None, "", None
    headers: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg in ("-X", "-H", "-o", "-w", "--data-binary"):
            value = args[i + 1]
            i += 2
            if arg == "-X":
                method = value
            elif arg == "-H":
                if value.startswith("@"):
                    headers.extend(Path(value[1:]).read_text(encoding="utf-8").splitlines())
                else:
                    headers.append(value)
            elif arg == "-o":
                output = value
            elif arg == "-w":
                write_out = value
            else:
                body = Path(value[1:]).read_bytes() if value.startswith("@") else value.encode()
            continue
        if not arg.startswith("-"):
            url = arg
        i += 1

    code, payload = handle(method, url, headers, body)
    with open(os.environ["FAKE_LOG"], "a", encoding="utf-8") as sink:
        sink.write(json.dumps({"tool": "curl", "method": method, "url": url, "code": code}) + "\n")
    text = json.dumps(payload)
    if output:
        Path(output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    sys.stdout.write(write_out.replace("%{http_code}", str(code)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

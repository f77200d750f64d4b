#!/usr/bin/env bash
# Smoke test of a deployed worker_llm_client: one positive and one negative flow run, created in
# Firestore through the REST API, checked on the documents and in Cloud Logging, then removed.
# Run `deploy/smoke.sh --help` for the variables and flags.
set -euo pipefail

SCRIPT_NAME=smoke.sh
# shellcheck source=deploy/common.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/common.sh"

usage() {
  cat <<'EOF'
Usage: deploy/smoke.sh [flags]

Smoke-tests a deployed worker_llm_client with two flow runs:
  positive  a READY LLM_REPORT step with a registered prompt and schema
            -> expects the step SUCCEEDED with outputs.gcs_uri, and a step_completed log entry
  negative  the same step with a promptId that does not exist
            -> expects the step FAILED with error.code PROMPT_NOT_FOUND, and a step_failed entry
The inputs (a small OHLCV JSON, one PNG chart and its charts manifest) are uploaded under a smoke
prefix of the artifacts bucket. Each flow run is created, then patched (updatedAt) so that the
Firestore `updated` trigger fires. Both documents, the uploaded objects and the report written by
the positive run are deleted at the end, also on failure or interruption.
The positive run makes one real Gemini call.

Every setting is an environment variable; the flags override some of them.

Required:
  PROJECT               --project ID       Google Cloud project id
  ARTIFACTS_BUCKET      --bucket NAME      the function's artifacts bucket (name or gs://name)
  PROMPT_ID             --prompt-id ID     an existing llm_prompts/{PROMPT_ID} document
  SCHEMA_ID             --schema-id ID     an existing llm_schemas/{SCHEMA_ID} document

Optional:
  FIRESTORE_DATABASE    --database ID      Firestore database (default: (default))
  MODEL_NAME            --model NAME       llmProfile.modelName (default: gemini-2.5-flash);
                                           must be in the function's GEMINI_ALLOWED_MODELS if set
  SMOKE_TIMEFRAME                          step timeframe (default: taken from PROMPT_ID, e.g. 1M
                                           for llm_prompt_1M_report_v1_0)
  SMOKE_SYMBOL                             scope.symbol (default: BTCUSDT)
  MISSING_PROMPT_ID                        promptId of the negative run; must NOT exist
                                           (default: llm_prompt_<tf>_report_smokemissing_v1_0)
  SMOKE_PREFIX                             object prefix for the uploaded inputs (default: smoke)
  SMOKE_TIMEOUT         --timeout SECONDS  wait for both steps to be terminal (default: 300)
  SMOKE_POLL_SECONDS                       document poll interval (default: 5)
  LOG_TIMEOUT                              wait for the log entries (default: 180; ingestion lags)
  LOG_POLL_SECONDS                         log poll interval (default: 15)
  LOG_FRESHNESS                            gcloud logging read --freshness (default: 1h)
  FLOW_RUNS_COLLECTION, LLM_PROMPTS_COLLECTION, LLM_SCHEMAS_COLLECTION
                                           as configured on the function (defaults: flow_runs,
                                           llm_prompts, llm_schemas)

Flags:
  --dry-run     print the plan (documents, uploads, log queries, cleanup) and exit 0; runs nothing
  -y, --yes     do not ask for confirmation (required when stdin is not a terminal)
  -h, --help    this help

Needs gcloud (authenticated; roles: Cloud Datastore User, Storage Object Admin on the bucket,
Logs Viewer), curl and python3.
Exit codes: 0 PASS (or dry run), 1 FAIL, 2 usage or configuration error, 4 not confirmed.
EOF
}

# --- configuration ------------------------------------------------------------------------------

DRY_RUN=0
ASSUME_YES=0

while [[ $# -gt 0 ]]; do
  case "$1" in
    --project) need_value "$@"; PROJECT="$2"; shift 2 ;;
    --bucket) need_value "$@"; ARTIFACTS_BUCKET="$2"; shift 2 ;;
    --prompt-id) need_value "$@"; PROMPT_ID="$2"; shift 2 ;;
    --schema-id) need_value "$@"; SCHEMA_ID="$2"; shift 2 ;;
    --database) need_value "$@"; FIRESTORE_DATABASE="$2"; shift 2 ;;
    --model) need_value "$@"; MODEL_NAME="$2"; shift 2 ;;
    --timeout) need_value "$@"; SMOKE_TIMEOUT="$2"; shift 2 ;;
    --dry-run) DRY_RUN=1; shift ;;
    -y | --yes) ASSUME_YES=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) die "$EXIT_USAGE" "unknown argument: $1 (see --help)" ;;
  esac
done

PROJECT="${PROJECT:-}"
ARTIFACTS_BUCKET="${ARTIFACTS_BUCKET:-}"
PROMPT_ID="${PROMPT_ID:-}"
SCHEMA_ID="${SCHEMA_ID:-}"
FIRESTORE_DATABASE="${FIRESTORE_DATABASE:-(default)}"
MODEL_NAME="${MODEL_NAME:-gemini-2.5-flash}"
SMOKE_SYMBOL="${SMOKE_SYMBOL:-BTCUSDT}"
SMOKE_PREFIX="${SMOKE_PREFIX:-smoke}"
SMOKE_TIMEOUT="${SMOKE_TIMEOUT:-300}"
SMOKE_POLL_SECONDS="${SMOKE_POLL_SECONDS:-5}"
LOG_TIMEOUT="${LOG_TIMEOUT:-180}"
LOG_POLL_SECONDS="${LOG_POLL_SECONDS:-15}"
LOG_FRESHNESS="${LOG_FRESHNESS:-1h}"
FLOW_RUNS_COLLECTION="${FLOW_RUNS_COLLECTION:-flow_runs}"
LLM_PROMPTS_COLLECTION="${LLM_PROMPTS_COLLECTION:-llm_prompts}"
LLM_SCHEMAS_COLLECTION="${LLM_SCHEMAS_COLLECTION:-llm_schemas}"

PROMPT_RE='^llm_prompt_([1-9][0-9]*[A-Za-z]+)_(report|reco)(_[a-z0-9]{1,24})?_v[1-9][0-9]*_(0|[1-9][0-9]*)$'
SCHEMA_RE='^llm_schema_[1-9][0-9]*[A-Za-z]+_(report|reco)(_[a-z0-9]{1,24})?_v[1-9][0-9]*_(0|[1-9][0-9]*)$'

validate() {
  local missing=() problems=() name
  for name in PROJECT ARTIFACTS_BUCKET PROMPT_ID SCHEMA_ID; do
    [[ -n "${!name}" ]] || missing+=("$name")
  done
  if [[ ${#missing[@]} -gt 0 ]]; then
    local joined
    joined="$(printf '%s, ' "${missing[@]}")"
    die "$EXIT_USAGE" "missing required variable(s): ${joined%, } (environment or flags, see --help)"
  fi
  if [[ "$PROMPT_ID" =~ $PROMPT_RE ]]; then
    SMOKE_TIMEFRAME="${SMOKE_TIMEFRAME:-${BASH_REMATCH[1]}}"
  else
    problems+=("PROMPT_ID does not match the promptId pattern (llm_prompt_<tf>_report|reco..._v<M>_<m>)")
  fi
  SMOKE_TIMEFRAME="${SMOKE_TIMEFRAME:-1M}"
  MISSING_PROMPT_ID="${MISSING_PROMPT_ID:-llm_prompt_${SMOKE_TIMEFRAME}_report_smokemissing_v1_0}"
  if [[ ! "$MISSING_PROMPT_ID" =~ $PROMPT_RE ]]; then
    problems+=("MISSING_PROMPT_ID does not match the promptId pattern")
  elif [[ "$MISSING_PROMPT_ID" == "$PROMPT_ID" ]]; then
    problems+=("MISSING_PROMPT_ID must differ from PROMPT_ID")
  fi
  [[ "$SCHEMA_ID" =~ $SCHEMA_RE ]] \
    || problems+=("SCHEMA_ID does not match the schemaId pattern (llm_schema_<tf>_report|reco..._v<M>_<m>)")
  [[ "$SMOKE_TIMEFRAME" =~ ^[1-9][0-9]*[A-Za-z]+$ ]] \
    || problems+=("SMOKE_TIMEFRAME must look like 1M, 1w, 1d or 4h")
  [[ "$PROJECT" =~ ^[a-z][a-z0-9:.-]{4,}[a-z0-9]$ ]] || problems+=("PROJECT must be a project id")
  ARTIFACTS_BUCKET="${ARTIFACTS_BUCKET#gs://}"
  ARTIFACTS_BUCKET="${ARTIFACTS_BUCKET%/}"
  [[ "$ARTIFACTS_BUCKET" =~ ^[a-z0-9][a-z0-9._-]{1,221}[a-z0-9]$ ]] \
    || problems+=("ARTIFACTS_BUCKET must be a bucket name")
  SMOKE_PREFIX="${SMOKE_PREFIX#/}"
  SMOKE_PREFIX="${SMOKE_PREFIX%/}"
  [[ "$SMOKE_PREFIX" =~ ^[A-Za-z0-9._/-]+$ ]] \
    || problems+=("SMOKE_PREFIX must be a non-empty object prefix")
  [[ "$FIRESTORE_DATABASE" =~ ^(\(default\)|[a-z][a-z0-9-]{2,62})$ ]] \
    || problems+=("FIRESTORE_DATABASE must be a database id")
  [[ "$MODEL_NAME" =~ ^[A-Za-z0-9._/-]+$ ]] || problems+=("MODEL_NAME must be a model name")
  [[ "$SMOKE_SYMBOL" =~ ^[A-Za-z0-9._-]+$ ]] || problems+=("SMOKE_SYMBOL must be a symbol")
  for name in SMOKE_TIMEOUT SMOKE_POLL_SECONDS LOG_TIMEOUT LOG_POLL_SECONDS; do
    [[ "${!name}" =~ ^[1-9][0-9]*$ ]] || problems+=("$name must be a positive number of seconds")
  done
  [[ "$LOG_FRESHNESS" =~ ^[1-9][0-9]*[smhd]$ ]] || problems+=("LOG_FRESHNESS must look like 1h")
  for name in FLOW_RUNS_COLLECTION LLM_PROMPTS_COLLECTION LLM_SCHEMAS_COLLECTION; do
    [[ "${!name}" =~ ^[A-Za-z0-9_-]+$ ]] || problems+=("$name must be a collection id")
  done
  if [[ ${#problems[@]} -gt 0 ]]; then
    printf 'smoke.sh: error: %s\n' "${problems[@]}" >&2
    exit "$EXIT_USAGE"
  fi
  for name in gcloud curl python3; do
    command -v "$name" >/dev/null 2>&1 || die "$EXIT_USAGE" "$name is not on PATH"
  done
}

validate

# --- helpers in Python: fixtures, Firestore value encoding, document decoding ------------------

HELPER="$(
  cat <<'PY'
import json
import struct
import sys
import zlib


def to_value(value):
    if value is None:
        return {"nullValue": None}
    if isinstance(value, bool):
        return {"booleanValue": value}
    if isinstance(value, int):
        return {"integerValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, str):
        return {"stringValue": value}
    if isinstance(value, list):
        return {"arrayValue": {"values": [to_value(v) for v in value]} if value else {}}
    if isinstance(value, dict):
        return {"mapValue": {"fields": to_fields(value)} if value else {}}
    raise TypeError(type(value).__name__)


def to_fields(mapping):
    return {key: to_value(item) for key, item in mapping.items()}


def from_value(value):
    kind, raw = next(iter(value.items()))
    if kind == "mapValue":
        return {k: from_value(v) for k, v in raw.get("fields", {}).items()}
    if kind == "arrayValue":
        return [from_value(v) for v in raw.get("values", [])]
    if kind == "integerValue":
        return int(raw)
    return raw


def write_json(path, data):
    with open(path, "w", encoding="utf-8") as sink:
        json.dump(data, sink, indent=2, sort_keys=False)
        sink.write("\n")


def png(path):
    size = 64
    rows = b"".join(
        b"\x00" + bytes(255 if abs(x - (size - 1 - y)) <= 1 else 32 + 3 * y for x in range(size))
        for y in range(size)
    )

    def chunk(tag, data):
        body = tag + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", size, size, 8, 0, 0, 0, 0)
    with open(path, "wb") as sink:
        sink.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
                   + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def ohlcv(path, symbol, timeframe):
    start, step = 1735689600000, 86400000
    candles = []
    price = 95000.0
    for i in range(12):
        o, c = price, price * (1.01 if i % 3 else 0.985)
        candles.append([start + i * step, round(o, 1), round(max(o, c) * 1.004, 1),
                        round(min(o, c) * 0.996, 1), round(c, 1), 1000.0 + 37 * i])
        price = c
    write_json(path, {"symbol": symbol, "timeframe": timeframe, "candles": candles})


def manifest(path, run_id, step_id, symbol, timeframe, png_uri, now):
    write_json(path, {
        "schemaVersion": 1, "runId": run_id, "stepId": step_id, "createdAt": now,
        "symbol": symbol, "timeframe": timeframe, "minImages": 1,
        "requested": [{"chartTemplateId": "ctpl_smoke_v1"}],
        "items": [{"chartTemplateId": "ctpl_smoke_v1",
                   "kind": "smoke test chart (synthetic price line)",
                   "generatedAt": now, "png_gcs_uri": png_uri}],
        "failures": [],
    })


def flowrun(plain_path, doc_path, run_id, symbol, tf, prompt_id, schema_id, model,
            ohlcv_uri, manifest_uri, now):
    ohlcv_id, charts_id, report_id = (f"ohlcv_{tf}_smoke_v1", f"charts_{tf}_smoke_v1",
                                      f"llm_report_{tf}_smoke_v1")
    run = {
        "schemaVersion": 1, "runId": run_id, "flowKey": "smoke_llm_report_v1",
        "status": "RUNNING", "createdAt": now, "updatedAt": now,
        "trigger": {"type": "SYSTEM", "source": "deploy/smoke.sh"},
        "scope": {"symbol": symbol},
        "steps": {
            ohlcv_id: {
                "stepType": "OHLCV_EXPORT", "status": "SUCCEEDED", "timeframe": tf,
                "createdAt": now, "finishedAt": now, "dependsOn": [],
                "inputs": {"source": "bigquery", "symbol": symbol, "timeframe": tf,
                           "exportMode": "all"},
                "outputs": {"gcs_uri": ohlcv_uri},
            },
            charts_id: {
                "stepType": "CHART_EXPORT", "status": "SUCCEEDED", "timeframe": tf,
                "createdAt": now, "finishedAt": now, "dependsOn": [ohlcv_id],
                "inputs": {"minImages": 1, "requests": [{"chartTemplateId": "ctpl_smoke_v1"}]},
                "outputs": {"gcs_uri": manifest_uri},
            },
            report_id: {
                "stepType": "LLM_REPORT", "status": "READY", "timeframe": tf,
                "createdAt": now, "dependsOn": [ohlcv_id, charts_id],
                "inputs": {
                    "llm": {
                        "promptId": prompt_id,
                        "llmProfile": {
                            "modelName": model, "temperature": 0.2,
                            "responseMimeType": "application/json",
                            "structuredOutput": {"schemaId": schema_id,
                                                 "kind": "LLM_REPORT_OUTPUT"},
                        },
                    },
                    "ohlcvStepId": ohlcv_id, "chartsManifestStepId": charts_id,
                    "previousReportStepIds": [],
                },
                "outputs": {},
            },
        },
    }
    write_json(plain_path, run)
    write_json(doc_path, {"fields": to_fields(run)})


def touch(path, now):
    write_json(path, {"fields": to_fields({"updatedAt": now})})


def step(doc_path, step_id):
    """Prints status, error code, outputs.gcs_uri and the run-level error code, tab-separated."""
    with open(doc_path, encoding="utf-8") as source:
        run = from_value({"mapValue": json.load(source)})
    item = (run.get("steps") or {}).get(step_id) or {}
    error = item.get("error") or {}
    outputs = item.get("outputs") or {}
    run_error = run.get("error") or {}
    fields = [item.get("status") or "MISSING", error.get("code") or "-",
              outputs.get("gcs_uri") or "-", run_error.get("code") or "-"]
    print("\t".join(str(f) for f in fields))


COMMANDS = {"png": png, "ohlcv": ohlcv, "manifest": manifest, "flowrun": flowrun,
            "touch": touch, "step": step}
COMMANDS[sys.argv[1]](*sys.argv[2:])
PY
)"

helper() {
  python3 -c "$HELPER" "$@"
}

random_suffix() {
  local chars="abcdefghijklmnopqrstuvwxyz0123456789" out="" _
  for _ in 1 2 3 4; do
    out+="${chars:RANDOM % 36:1}"
  done
  printf '%s%s' "$1" "$out"
}

# --- what the test will do ----------------------------------------------------------------------

STAMP="$(date -u +%Y%m%d-%H%M%S)"
NOW="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
RUN_OK="${STAMP}_SMOKE_$(random_suffix p)"
RUN_BAD="${STAMP}_SMOKE_$(random_suffix n)"
REPORT_STEP="llm_report_${SMOKE_TIMEFRAME}_smoke_v1"
CHARTS_STEP="charts_${SMOKE_TIMEFRAME}_smoke_v1"

OBJECT_BASE="gs://$ARTIFACTS_BUCKET/$SMOKE_PREFIX/$RUN_OK"
OHLCV_URI="$OBJECT_BASE/ohlcv.json"
PNG_URI="$OBJECT_BASE/chart.png"
MANIFEST_URI="$OBJECT_BASE/charts_manifest.json"

WORK_DIR="$(mktemp -d "${TMPDIR:-/tmp}/worker-llm-client-smoke.XXXXXX")"
chmod 700 "$WORK_DIR"
AUTH_HEADER_FILE="$WORK_DIR/auth-header"
RESPONSE_FILE="$WORK_DIR/response.json"

helper ohlcv "$WORK_DIR/ohlcv.json" "$SMOKE_SYMBOL" "$SMOKE_TIMEFRAME"
helper png "$WORK_DIR/chart.png"
helper manifest "$WORK_DIR/charts_manifest.json" "$RUN_OK" "$CHARTS_STEP" "$SMOKE_SYMBOL" \
  "$SMOKE_TIMEFRAME" "$PNG_URI" "$NOW"
helper flowrun "$WORK_DIR/run_ok.plain.json" "$WORK_DIR/run_ok.doc.json" "$RUN_OK" \
  "$SMOKE_SYMBOL" "$SMOKE_TIMEFRAME" "$PROMPT_ID" "$SCHEMA_ID" "$MODEL_NAME" "$OHLCV_URI" \
  "$MANIFEST_URI" "$NOW"
helper flowrun "$WORK_DIR/run_bad.plain.json" "$WORK_DIR/run_bad.doc.json" "$RUN_BAD" \
  "$SMOKE_SYMBOL" "$SMOKE_TIMEFRAME" "$MISSING_PROMPT_ID" "$SCHEMA_ID" "$MODEL_NAME" \
  "$OHLCV_URI" "$MANIFEST_URI" "$NOW"

DOCS_URL="https://firestore.googleapis.com/v1/projects/$PROJECT/databases/$FIRESTORE_DATABASE/documents"
UPLOADS=("$WORK_DIR/ohlcv.json=$OHLCV_URI" "$WORK_DIR/chart.png=$PNG_URI"
  "$WORK_DIR/charts_manifest.json=$MANIFEST_URI")

log_filter() {
  local run_id="$1" event="$2" extra="${3:-}"
  printf 'jsonPayload.runId="%s" AND jsonPayload.event="%s"%s' "$run_id" "$event" "$extra"
}
FILTER_OK="$(log_filter "$RUN_OK" step_completed)"
FILTER_BAD="$(log_filter "$RUN_BAD" step_failed ' AND jsonPayload.error.code="PROMPT_NOT_FOUND"')"

log_read_command() {
  command_line gcloud logging read "$1" "--project=$PROJECT" "--freshness=$LOG_FRESHNESS" \
    --limit=1 "--format=value(jsonPayload.event)"
}

curl_display() {
  # How the request looks when typed by hand; the script sends the same header from a private
  # file so the token never shows in process lists or output.
  local method="$1" url="$2" body="${3:-}"
  local line="curl -sS -X $method -H \"Authorization: Bearer \$(gcloud auth print-access-token)\""
  if [[ -n "$body" ]]; then
    line+=" -H 'Content-Type: application/json' --data-binary @$(shell_word "$body")"
  fi
  printf '%s %s' "$line" "$(shell_word "$url")"
}

print_plan() {
  local upload
  echo
  echo "=== Smoke test plan: project $PROJECT, database $FIRESTORE_DATABASE ==="
  echo "positive run: $RUN_OK  promptId $PROMPT_ID, schemaId $SCHEMA_ID, model $MODEL_NAME"
  echo "              expect step $REPORT_STEP SUCCEEDED with outputs.gcs_uri; log step_completed"
  echo "negative run: $RUN_BAD  promptId $MISSING_PROMPT_ID (must not exist)"
  echo "              expect step $REPORT_STEP FAILED with PROMPT_NOT_FOUND; log step_failed"
  echo
  echo "1. Read-only checks (prompt and schema exist, the negative prompt does not):"
  echo "   $(curl_display GET "$DOCS_URL/$LLM_PROMPTS_COLLECTION/$PROMPT_ID")  -> 200"
  echo "   $(curl_display GET "$DOCS_URL/$LLM_SCHEMAS_COLLECTION/$SCHEMA_ID")  -> 200"
  echo "   $(curl_display GET "$DOCS_URL/$LLM_PROMPTS_COLLECTION/$MISSING_PROMPT_ID")  -> 404"
  echo "2. Upload the inputs:"
  for upload in "${UPLOADS[@]}"; do
    echo "   $(command_line gcloud storage cp "${upload%%=*}" "${upload#*=}")"
  done
  echo "3. Create the flow runs (a 'created' event, which the function ignores):"
  echo "   $(curl_display POST "$DOCS_URL/$FLOW_RUNS_COLLECTION?documentId=$RUN_OK" \
    "$WORK_DIR/run_ok.doc.json")"
  echo "   $(curl_display POST "$DOCS_URL/$FLOW_RUNS_COLLECTION?documentId=$RUN_BAD" \
    "$WORK_DIR/run_bad.doc.json")"
  echo "4. Patch updatedAt so the 'updated' trigger fires:"
  echo "   $(curl_display PATCH \
    "$DOCS_URL/$FLOW_RUNS_COLLECTION/$RUN_OK?updateMask.fieldPaths=updatedAt&currentDocument.exists=true" \
    "$WORK_DIR/touch.json")"
  echo "   $(curl_display PATCH \
    "$DOCS_URL/$FLOW_RUNS_COLLECTION/$RUN_BAD?updateMask.fieldPaths=updatedAt&currentDocument.exists=true" \
    "$WORK_DIR/touch.json")"
  echo "5. Poll both documents every ${SMOKE_POLL_SECONDS}s, up to ${SMOKE_TIMEOUT}s:"
  echo "   $(curl_display GET "$DOCS_URL/$FLOW_RUNS_COLLECTION/$RUN_OK")"
  echo "   $(curl_display GET "$DOCS_URL/$FLOW_RUNS_COLLECTION/$RUN_BAD")"
  echo "6. Cloud Logging queries (every ${LOG_POLL_SECONDS}s, up to ${LOG_TIMEOUT}s):"
  echo "   $(log_read_command "$FILTER_OK")"
  echo "   $(log_read_command "$FILTER_BAD")"
  echo "7. Cleanup, always (also on failure or Ctrl-C):"
  echo "   $(curl_display DELETE "$DOCS_URL/$FLOW_RUNS_COLLECTION/$RUN_OK")"
  echo "   $(curl_display DELETE "$DOCS_URL/$FLOW_RUNS_COLLECTION/$RUN_BAD")"
  echo "   $(command_line gcloud storage rm "$OHLCV_URI" "$PNG_URI" "$MANIFEST_URI")"
  echo "   gcloud storage rm <outputs.gcs_uri of the positive step, when it reports one>"
  echo
  echo "Positive flow run document (the negative one differs in runId and promptId):"
  sed 's/^/  /' "$WORK_DIR/run_ok.plain.json"
  echo
}

print_plan

if [[ "$DRY_RUN" -eq 1 ]]; then
  rm -rf -- "$WORK_DIR"
  echo "Dry run: nothing was created, uploaded or queried."
  exit 0
fi

if ! ask_to_proceed "done"; then
  rm -rf -- "$WORK_DIR"
  exit "$EXIT_NOT_CONFIRMED"
fi

# --- execution ----------------------------------------------------------------------------------

CREATED_DOCS=()
UPLOADED=()
REPORT_URI=""
CLEANUP_OK=1
declare -A RESULT=()   # check name -> PASS|FAIL
declare -A DETAIL=()   # check name -> one line
CHECKS=("positive document" "positive log" "negative document" "negative log")
for check in "${CHECKS[@]}"; do
  RESULT[$check]="FAIL"
  DETAIL[$check]="not run"
done

# Sends one Firestore REST request; sets HTTP_CODE, the body lands in RESPONSE_FILE.
firestore() {
  local method="$1" url="$2" body="${3:-}"
  local args=(-sS -X "$method" -H "@$AUTH_HEADER_FILE" -o "$RESPONSE_FILE" -w '%{http_code}')
  if [[ -n "$body" ]]; then
    args+=(-H 'Content-Type: application/json' --data-binary "@$body")
  fi
  : >"$RESPONSE_FILE"
  HTTP_CODE="$(curl "${args[@]}" "$url")" || HTTP_CODE="${HTTP_CODE:-000}"
}

response_error() {
  # The message of a Google API error body, for diagnostics (never contains credentials).
  python3 -c 'import json,sys
try:
    print(json.load(open(sys.argv[1]))["error"]["message"][:300])
except Exception:
    print("no error message")' "$RESPONSE_FILE"
}

# shellcheck disable=SC2329  # reached through the EXIT trap
cleanup() {
  local doc
  echo
  echo "Cleanup:"
  for doc in "${CREATED_DOCS[@]}"; do
    firestore DELETE "$DOCS_URL/$FLOW_RUNS_COLLECTION/$doc"
    if [[ "$HTTP_CODE" == 200 || "$HTTP_CODE" == 404 ]]; then
      echo "  deleted $FLOW_RUNS_COLLECTION/$doc"
    else
      echo "  FAILED to delete $FLOW_RUNS_COLLECTION/$doc (HTTP $HTTP_CODE)" >&2
      CLEANUP_OK=0
    fi
  done
  if [[ ${#UPLOADED[@]} -gt 0 ]]; then
    echo "  + $(command_line gcloud storage rm "${UPLOADED[@]}")"
    if ! gcloud storage rm "${UPLOADED[@]}"; then
      echo "  FAILED to remove some uploaded smoke inputs" >&2
      CLEANUP_OK=0
    fi
  fi
  # The report of the positive run, but only where the worker is expected to write it.
  if [[ "$REPORT_URI" == "gs://$ARTIFACTS_BUCKET/$RUN_OK/"* \
    || "$REPORT_URI" == "gs://$ARTIFACTS_BUCKET/"*"/$RUN_OK/"* ]]; then
    echo "  + $(command_line gcloud storage rm "$REPORT_URI")"
    if ! gcloud storage rm "$REPORT_URI"; then
      echo "  FAILED to remove the smoke report $REPORT_URI" >&2
      CLEANUP_OK=0
    fi
  elif [[ -n "$REPORT_URI" ]]; then
    echo "  left $REPORT_URI in place (outside the expected artifact path)" >&2
  elif [[ ${#CREATED_DOCS[@]} -gt 0 ]]; then
    echo "  note: no report URI was recorded; if the positive step finishes later, its report" \
      "lands under gs://$ARTIFACTS_BUCKET/.../$RUN_OK/ and can be removed by hand."
  fi
}

# shellcheck disable=SC2329  # reached through the EXIT trap
print_summary() {
  local check all_pass=1
  echo
  echo "=== Smoke test summary ==="
  for check in "${CHECKS[@]}"; do
    printf '  %-4s  %-18s %s\n' "${RESULT[$check]}" "$check" "${DETAIL[$check]}"
    [[ "${RESULT[$check]}" == PASS ]] || all_pass=0
  done
  if [[ "$CLEANUP_OK" -eq 1 ]]; then
    printf '  %-4s  %-18s %s\n' PASS cleanup "nothing left behind"
  else
    printf '  %-4s  %-18s %s\n' FAIL cleanup "see the messages above; remove leftovers by hand"
    all_pass=0
  fi
  if [[ "$all_pass" -eq 1 ]]; then
    echo "RESULT: PASS"
    return 0
  fi
  echo "RESULT: FAIL"
  [[ ${#CREATED_DOCS[@]} -gt 0 ]] || return 1
  echo "All log entries of both runs:"
  echo "  $(command_line gcloud logging read \
    "jsonPayload.runId=\"$RUN_OK\" OR jsonPayload.runId=\"$RUN_BAD\"" "--project=$PROJECT" \
    "--freshness=$LOG_FRESHNESS" --limit=100)"
  return 1
}

# shellcheck disable=SC2329  # reached through the EXIT trap
on_exit() {
  local rc=$?
  set +e
  trap - EXIT INT TERM
  cleanup
  rm -rf -- "$WORK_DIR"
  if print_summary && [[ "$rc" -eq 0 ]]; then
    exit 0
  fi
  [[ "$rc" -ne 0 ]] || rc="$EXIT_FAILED"
  exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

fail() {
  printf 'smoke.sh: %s\n' "$*" >&2
  exit "$EXIT_FAILED"
}

echo "Authenticating: gcloud auth print-access-token"
TOKEN="$(gcloud auth print-access-token)" || fail "gcloud auth print-access-token failed"
(umask 077 && printf 'Authorization: Bearer %s\n' "$TOKEN" >"$AUTH_HEADER_FILE")
unset TOKEN

echo "1. Read-only checks"
firestore GET "$DOCS_URL/$LLM_PROMPTS_COLLECTION/$PROMPT_ID"
[[ "$HTTP_CODE" == 200 ]] \
  || fail "$LLM_PROMPTS_COLLECTION/$PROMPT_ID is not readable (HTTP $HTTP_CODE: $(response_error))"
firestore GET "$DOCS_URL/$LLM_SCHEMAS_COLLECTION/$SCHEMA_ID"
[[ "$HTTP_CODE" == 200 ]] \
  || fail "$LLM_SCHEMAS_COLLECTION/$SCHEMA_ID is not readable (HTTP $HTTP_CODE: $(response_error))"
firestore GET "$DOCS_URL/$LLM_PROMPTS_COLLECTION/$MISSING_PROMPT_ID"
[[ "$HTTP_CODE" == 404 ]] \
  || fail "$LLM_PROMPTS_COLLECTION/$MISSING_PROMPT_ID should not exist (HTTP $HTTP_CODE);" \
    "set MISSING_PROMPT_ID to an unused id"
echo "   prompt and schema found; $MISSING_PROMPT_ID absent"

echo "2. Upload the inputs"
for upload in "${UPLOADS[@]}"; do
  echo "   + $(command_line gcloud storage cp "${upload%%=*}" "${upload#*=}")"
  gcloud storage cp "${upload%%=*}" "${upload#*=}" || fail "upload to ${upload#*=} failed"
  UPLOADED+=("${upload#*=}")
done

echo "3. Create the flow runs"
for run in "$RUN_OK" "$RUN_BAD"; do
  body="$WORK_DIR/run_ok.doc.json"
  [[ "$run" == "$RUN_OK" ]] || body="$WORK_DIR/run_bad.doc.json"
  firestore POST "$DOCS_URL/$FLOW_RUNS_COLLECTION?documentId=$run" "$body"
  [[ "$HTTP_CODE" == 200 ]] \
    || fail "creating $FLOW_RUNS_COLLECTION/$run failed (HTTP $HTTP_CODE: $(response_error))"
  CREATED_DOCS+=("$run")
  echo "   created $FLOW_RUNS_COLLECTION/$run"
done

echo "4. Patch updatedAt (fires the updated trigger)"
helper touch "$WORK_DIR/touch.json" "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
for run in "$RUN_OK" "$RUN_BAD"; do
  firestore PATCH \
    "$DOCS_URL/$FLOW_RUNS_COLLECTION/$run?updateMask.fieldPaths=updatedAt&currentDocument.exists=true" \
    "$WORK_DIR/touch.json"
  [[ "$HTTP_CODE" == 200 ]] \
    || fail "patching $FLOW_RUNS_COLLECTION/$run failed (HTTP $HTTP_CODE: $(response_error))"
  echo "   patched $FLOW_RUNS_COLLECTION/$run"
done

echo "5. Waiting for both steps to be terminal (up to ${SMOKE_TIMEOUT}s)"
declare -A STATE=([$RUN_OK]="" [$RUN_BAD]="")
declare -A LAST=([$RUN_OK]="" [$RUN_BAD]="")
deadline=$((SECONDS + SMOKE_TIMEOUT))
while :; do
  pending=0
  for run in "$RUN_OK" "$RUN_BAD"; do
    [[ -z "${STATE[$run]}" ]] || continue
    firestore GET "$DOCS_URL/$FLOW_RUNS_COLLECTION/$run"
    if [[ "$HTTP_CODE" != 200 ]]; then
      line="HTTP $HTTP_CODE"
    else
      line="$(helper step "$RESPONSE_FILE" "$REPORT_STEP")"
    fi
    if [[ "$line" != "${LAST[$run]}" ]]; then
      echo "   $run: ${line//$'\t'/ } ($((SMOKE_TIMEOUT - deadline + SECONDS))s)"
      LAST[$run]="$line"
    fi
    IFS=$'\t' read -r status code uri run_error <<<"$line"
    case "$status" in
      SUCCEEDED | FAILED | SKIPPED | CANCELLED) STATE[$run]="$line" ;;
      *)
        if [[ "${run_error:--}" != "-" ]]; then
          STATE[$run]="$line"  # run-level error (FLOW_RUN_INVALID): the step will not move
        else
          pending=1
        fi
        ;;
    esac
    if [[ "$run" == "$RUN_OK" && "${uri:--}" == gs://* ]]; then
      REPORT_URI="$uri"
    fi
  done
  [[ "$pending" -eq 1 && "$SECONDS" -lt "$deadline" ]] || break
  sleep "$SMOKE_POLL_SECONDS"
done

IFS=$'\t' read -r status code uri run_error <<<"${STATE[$RUN_OK]:-${LAST[$RUN_OK]}}"
if [[ "$status" == SUCCEEDED && "$uri" == gs://* ]]; then
  RESULT["positive document"]=PASS
  DETAIL["positive document"]="SUCCEEDED, outputs.gcs_uri=$uri"
else
  DETAIL["positive document"]="expected SUCCEEDED with outputs.gcs_uri; got status=${status:-?}"
  DETAIL["positive document"]+=" error=${code:--} runError=${run_error:--}"
  [[ -n "${STATE[$RUN_OK]}" ]] || DETAIL["positive document"]+=" (timed out)"
fi
IFS=$'\t' read -r status code uri run_error <<<"${STATE[$RUN_BAD]:-${LAST[$RUN_BAD]}}"
if [[ "$status" == FAILED && "$code" == PROMPT_NOT_FOUND ]]; then
  RESULT["negative document"]=PASS
  DETAIL["negative document"]="FAILED with PROMPT_NOT_FOUND"
else
  DETAIL["negative document"]="expected FAILED/PROMPT_NOT_FOUND; got status=${status:-?}"
  DETAIL["negative document"]+=" error=${code:--} runError=${run_error:--}"
  [[ -n "${STATE[$RUN_BAD]}" ]] || DETAIL["negative document"]+=" (timed out)"
fi

echo "6. Cloud Logging"
check_log() {
  local check="$1" filter="$2" found="" log_deadline=$((SECONDS + LOG_TIMEOUT))
  if [[ "${RESULT[${check/log/document}]}" != PASS ]]; then
    DETAIL[$check]="skipped: the document check failed"
    return 0
  fi
  echo "   query: $(log_read_command "$filter")"
  while :; do
    if ! found="$(gcloud logging read "$filter" "--project=$PROJECT" \
      "--freshness=$LOG_FRESHNESS" --limit=1 "--format=value(jsonPayload.event)")"; then
      DETAIL[$check]="gcloud logging read failed (need roles/logging.viewer)"
      return 0
    fi
    [[ -z "$found" && "$SECONDS" -lt "$log_deadline" ]] || break
    sleep "$LOG_POLL_SECONDS"
  done
  if [[ -n "$found" ]]; then
    RESULT[$check]=PASS
    DETAIL[$check]="found: $filter"
  else
    DETAIL[$check]="no entry within ${LOG_TIMEOUT}s: $filter"
  fi
}
check_log "positive log" "$FILTER_OK"
check_log "negative log" "$FILTER_BAD"

for check in "${CHECKS[@]}"; do
  [[ "${RESULT[$check]}" == PASS ]] || exit "$EXIT_FAILED"
done
exit 0

# shellcheck shell=bash disable=SC2034  # the variables are read by deploy.sh, which sources this
# Deploy profile of worker_llm_client (SPEC §15), sourced by `deploy/deploy.sh --worker
# llm-client`. It declares what differs between workers: entry points, trigger, timeouts, its
# variables, its secret and the IAM bindings its runtime account needs beyond Firestore.

WORKER_LABEL="worker_llm_client"
DEFAULT_FUNCTION_NAME="worker-llm-client"
ENTRY_POINT="on_flow_run_updated"
RECOVERY_ENTRY_POINT="recover_stale_steps"
INVOCATION_TIMEOUT_SECONDS=780
DEFAULT_MEMORY="512Mi" # bench/memory.py: 188 MB peak RSS for the worst accepted step
DEFAULT_EVENT_TYPE="google.cloud.firestore.document.v1.updated"
COLLECTION_VARIABLE="FLOW_RUNS_COLLECTION"
DEFAULT_COLLECTION="flow_runs"
DOCUMENT_PARAMETER="{runId}"
DEFAULT_MAX_INSTANCES=""

profile_usage() {
  cat <<'EOF'
Worker llm-client (SPEC §15): entry point on_flow_run_updated, trigger
google.cloud.firestore.document.v1.updated on flow_runs/{runId}, recovery recover_stale_steps.

Required for this worker:
  ARTIFACTS_BUCKET     --bucket NAME           bucket for report artifacts (name or gs://name)
  and exactly one Gemini key source (secret NAMES only, never key material):
  GEMINI_SECRET        --gemini-secret NAME    secret holding one AI Studio key
                                               -> GEMINI_API_KEY
  GEMINI_KEYS_SECRET   --gemini-keys-secret NAME
                                               secret holding {"<keyId>": "<key>", ...}
                                               -> GEMINI_API_KEYS_JSON (key rotation)
  GEMINI_API_KEY_ID    --gemini-key-id ID      active key id (required with GEMINI_KEYS_SECRET)

Optional for this worker:
  ARTIFACTS_PREFIX     --prefix PREFIX         object prefix inside ARTIFACTS_BUCKET
  GEMINI_ALLOWED_MODELS --allowed-models LIST  comma-separated model allowlist
  GEMINI_SECRET_VERSION                        secret version to mount (default: latest)
  GEMINI_TIMEOUT_SECONDS, LLM_PROMPTS_COLLECTION, LLM_SCHEMAS_COLLECTION
                                               passed to the function when set (SPEC §14)
  MEMORY default 512Mi (bench/memory.py: the worst accepted step peaks at 188 MB)
EOF
}

# Consumes a flag of this worker and sets PROFILE_SHIFT to the words used, or returns 1.
profile_flag() {
  case "$1" in
    --bucket) need_value "$@"; ARTIFACTS_BUCKET="$2" ;;
    --prefix) need_value "$@"; ARTIFACTS_PREFIX="$2" ;;
    --gemini-secret) need_value "$@"; GEMINI_SECRET="$2" ;;
    --gemini-keys-secret) need_value "$@"; GEMINI_KEYS_SECRET="$2" ;;
    --gemini-key-id) need_value "$@"; GEMINI_API_KEY_ID="$2" ;;
    --allowed-models) need_value "$@"; GEMINI_ALLOWED_MODELS="$2" ;;
    *) return 1 ;;
  esac
  PROFILE_SHIFT=2
}

profile_defaults() {
  ARTIFACTS_BUCKET="${ARTIFACTS_BUCKET:-}"
  ARTIFACTS_PREFIX="${ARTIFACTS_PREFIX:-}"
  GEMINI_SECRET="${GEMINI_SECRET:-}"
  GEMINI_KEYS_SECRET="${GEMINI_KEYS_SECRET:-}"
  GEMINI_API_KEY_ID="${GEMINI_API_KEY_ID:-}"
  GEMINI_SECRET_VERSION="${GEMINI_SECRET_VERSION:-latest}"
  GEMINI_ALLOWED_MODELS="${GEMINI_ALLOWED_MODELS:-}"
  GEMINI_TIMEOUT_SECONDS="${GEMINI_TIMEOUT_SECONDS:-}"
  LLM_PROMPTS_COLLECTION="${LLM_PROMPTS_COLLECTION:-}"
  LLM_SCHEMAS_COLLECTION="${LLM_SCHEMAS_COLLECTION:-}"
}

# Appends to the `missing` and `problems` arrays of deploy.sh's validate() (its locals).
profile_validate() {
  local name
  [[ -n "$ARTIFACTS_BUCKET" ]] || missing+=("ARTIFACTS_BUCKET")
  if [[ -z "$GEMINI_SECRET" && -z "$GEMINI_KEYS_SECRET" ]]; then
    missing+=("GEMINI_SECRET (or GEMINI_KEYS_SECRET + GEMINI_API_KEY_ID)")
  fi
  if [[ -n "$GEMINI_KEYS_SECRET" && -z "$GEMINI_API_KEY_ID" ]]; then
    missing+=("GEMINI_API_KEY_ID (required with GEMINI_KEYS_SECRET)")
  fi
  if [[ -n "$GEMINI_SECRET" && -n "$GEMINI_KEYS_SECRET" ]]; then
    problems+=("set either GEMINI_SECRET or GEMINI_KEYS_SECRET, not both")
  fi
  if [[ -n "$GEMINI_API_KEY_ID" && -z "$GEMINI_KEYS_SECRET" ]]; then
    problems+=("GEMINI_API_KEY_ID only applies with GEMINI_KEYS_SECRET")
  fi
  for name in GEMINI_SECRET GEMINI_KEYS_SECRET; do
    if [[ -n "${!name}" ]] && ! is_secret_name "${!name}"; then
      problems+=("$name must be a secret name (letters, digits, _ and -), not a path or a key")
    fi
  done
  if [[ ! "$GEMINI_SECRET_VERSION" =~ ^(latest|[1-9][0-9]*)$ ]]; then
    problems+=("GEMINI_SECRET_VERSION must be 'latest' or a version number")
  fi
  if [[ -n "$GEMINI_API_KEY_ID" && ! "$GEMINI_API_KEY_ID" =~ ^[A-Za-z0-9_.:-]{1,64}$ ]]; then
    problems+=("GEMINI_API_KEY_ID must be a short key id (letters, digits, _ . : -)")
  fi
  ARTIFACTS_BUCKET="$(bucket_name "$ARTIFACTS_BUCKET")"
  if [[ -n "$ARTIFACTS_BUCKET" ]] && ! is_bucket_name "$ARTIFACTS_BUCKET"; then
    problems+=("ARTIFACTS_BUCKET must be a bucket name")
  fi
  if [[ -n "$GEMINI_TIMEOUT_SECONDS" ]] && ! is_seconds "$GEMINI_TIMEOUT_SECONDS"; then
    problems+=("GEMINI_TIMEOUT_SECONDS must be a number of seconds")
  fi
  for name in LLM_PROMPTS_COLLECTION LLM_SCHEMAS_COLLECTION; do
    if [[ "${!name}" == */* ]]; then
      problems+=("$name must not contain '/'")
    fi
  done
  for name in ARTIFACTS_PREFIX GEMINI_ALLOWED_MODELS; do
    if [[ "${!name}" == *$'\n'* ]]; then
      problems+=("$name must be a single line")
    fi
  done
  if [[ -n "${GEMINI_API_KEY:-}" || -n "${GEMINI_API_KEYS_JSON:-}" ]]; then
    warn "a Gemini key variable is set in this shell; it is ignored (the function reads keys" \
      "from Secret Manager only). Consider unsetting it."
  fi
}

profile_env_vars() {
  env_entry ARTIFACTS_BUCKET "$ARTIFACTS_BUCKET"
  env_entry ARTIFACTS_PREFIX "$ARTIFACTS_PREFIX"
  env_entry GEMINI_ALLOWED_MODELS "$GEMINI_ALLOWED_MODELS"
  env_entry GEMINI_TIMEOUT_SECONDS "$GEMINI_TIMEOUT_SECONDS"
  env_entry GEMINI_API_KEY_ID "$GEMINI_API_KEY_ID"
  env_entry LLM_PROMPTS_COLLECTION "$LLM_PROMPTS_COLLECTION"
  env_entry LLM_SCHEMAS_COLLECTION "$LLM_SCHEMAS_COLLECTION"
}

# Sets SECRET_NAME, SECRET_ENV and SECRET_REF: the one secret the functions mount (none: empty).
profile_secret() {
  if [[ -n "$GEMINI_KEYS_SECRET" ]]; then
    SECRET_NAME="$GEMINI_KEYS_SECRET"
    SECRET_ENV="GEMINI_API_KEYS_JSON"
  else
    SECRET_NAME="$GEMINI_SECRET"
    SECRET_ENV="GEMINI_API_KEY"
  fi
  SECRET_REF="projects/$PROJECT/secrets/$SECRET_NAME:$GEMINI_SECRET_VERSION"
}

# The runtime account's bindings beyond Firestore and the secret (deploy.sh plans those).
profile_plan_iam() {
  # Create and view only: the worker never deletes or overwrites (create-only writes), so it
  # must not be able to, whatever a bug asks for; objectAdmin would let it erase other reports.
  plan_bucket_role "create objects in gs://$ARTIFACTS_BUCKET (never overwrite or delete)" \
    "$ARTIFACTS_BUCKET" storage.objectCreator
  plan_bucket_role "read inputs and artifacts in gs://$ARTIFACTS_BUCKET" \
    "$ARTIFACTS_BUCKET" storage.objectViewer
}

# Steps after the functions and the schedule (none for this worker).
profile_plan_after() {
  :
}

profile_summary() {
  echo "artifacts:          gs://$ARTIFACTS_BUCKET${ARTIFACTS_PREFIX:+ (prefix $ARTIFACTS_PREFIX)}"
  echo "Gemini key:         $SECRET_ENV <- secret $SECRET_REF"
}

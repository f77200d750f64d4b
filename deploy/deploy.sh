#!/usr/bin/env bash
# Deploys worker_llm_client as a Cloud Functions gen2 CloudEvent function triggered by Firestore
# `updated` events on flow_runs/{runId} (SPEC §15), its stale-step recovery as an authenticated
# HTTP function called by Cloud Scheduler every 10 minutes (COMMON.md §2), and the
# least-privilege IAM bindings both need.
#
# The script only ever handles secret *names*; key material stays in Secret Manager.
# Run `deploy/deploy.sh --help` for the variables and flags.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/.." && pwd)"

ENTRY_POINT="on_flow_run_updated"
RECOVERY_ENTRY_POINT="recover_stale_steps"
RECOVERY_SCHEDULE="*/10 * * * *"
DEFAULT_MEMORY="512Mi" # bench/memory.py: 188 MB peak RSS for the worst accepted step
ENTRY_FILE="entry.py"
RUNTIME="python312"
INVOCATION_TIMEOUT_SECONDS=780
EVENT_TYPE="google.cloud.firestore.document.v1.updated"
# Runtime code only: no tests, devstack, tools, examples or docs go up.
RUNTIME_PATHS=("$ENTRY_FILE" compose.py engine states adapters wheelsim)

# Exit codes.
SCRIPT_NAME=deploy.sh
# shellcheck source=deploy/common.sh
source "$SCRIPT_DIR/common.sh" # EXIT_FAILED=1 a command failed, EXIT_USAGE=2, EXIT_NOT_CONFIRMED=4
EXIT_LOCATION=3 # Firestore location and REGION do not line up

usage() {
  cat <<'EOF'
Usage: deploy/deploy.sh [flags]

Deploys worker_llm_client (Cloud Functions gen2, Python 3.12, entry point on_flow_run_updated)
with an Eventarc trigger on google.cloud.firestore.document.v1.updated for flow_runs/{runId};
its stale-step recovery recover_stale_steps as an authenticated HTTP function (FUNCTION_NAME-
recover) with a Cloud Scheduler job calling it every 10 minutes (OIDC); and the least-privilege
IAM bindings they need. No retry policy is set: work an invocation leaves unfinished is finished
by the recovery. First deploy and update are the same command. The full plan (every gcloud
command) is printed first; nothing changes until you confirm.

Every setting is an environment variable; the flags override them.

Required:
  PROJECT              --project ID            Google Cloud project id
  REGION               --region REGION         function region; must equal the Firestore location
  RUNTIME_SA           --runtime-sa EMAIL      service account the functions run as
  TRIGGER_SA           --trigger-sa EMAIL      Eventarc trigger identity; its own account,
                                               not RUNTIME_SA (it may only receive and invoke)
  ARTIFACTS_BUCKET     --bucket NAME           bucket for report artifacts (name or gs://name)
  and exactly one Gemini key source (secret NAMES only, never key material):
  GEMINI_SECRET        --gemini-secret NAME    secret holding one AI Studio key
                                               -> GEMINI_API_KEY
  GEMINI_KEYS_SECRET   --gemini-keys-secret NAME
                                               secret holding {"<keyId>": "<key>", ...}
                                               -> GEMINI_API_KEYS_JSON (key rotation)
  GEMINI_API_KEY_ID    --gemini-key-id ID      active key id (required with GEMINI_KEYS_SECRET)

Optional:
  FIRESTORE_DATABASE   --database ID           Firestore database (default: (default))
  SCHEDULER_SA         --scheduler-sa EMAIL    identity of the Cloud Scheduler job calling the
                                               recovery function (default: TRIGGER_SA)
  ARTIFACTS_PREFIX     --prefix PREFIX         object prefix inside ARTIFACTS_BUCKET
  GEMINI_ALLOWED_MODELS --allowed-models LIST  comma-separated model allowlist
  ENV                  --env NAME              environment label written on every log line
  LOG_LEVEL            --log-level LEVEL       DEBUG|INFO|WARNING|ERROR
  FUNCTION_NAME        --function-name NAME    function and Cloud Run service name
                                               (default: worker-llm-client)
  GEMINI_SECRET_VERSION                        secret version to mount (default: latest)
  FINALIZE_BUDGET_SECONDS, GEMINI_TIMEOUT_SECONDS,
  FLOW_RUNS_COLLECTION, LLM_PROMPTS_COLLECTION, LLM_SCHEMAS_COLLECTION
                                               passed to the function when set (SPEC §14);
                                               FLOW_RUNS_COLLECTION also sets the trigger path
  MEMORY, CPU                                  --memory/--cpu of the functions (MEMORY default
                                               512Mi, sized by bench/memory.py; CPU only when set)
  BUILD_SA                                     service account email for the Cloud Build step
                                               (--build-service-account; not passed unless set)

Flags:
  --trigger-location LOC  Eventarc trigger location. Only needed when the Firestore database is
                          in a multi-region (nam5, eur3, ...): the trigger must then sit in the
                          multi-region while the function runs in REGION. Defaults to REGION.
  --dry-run               print the plan and exit 0; only read-only describe calls run
  -y, --yes               do not ask for confirmation (required when stdin is not a terminal)
  -h, --help              this help

Exit codes: 0 done (or dry run), 1 a command failed, 2 usage or configuration error,
            3 Firestore location / REGION mismatch, 4 not confirmed.
EOF
}

warn() {
  printf '%s: warning: %s\n' "$SCRIPT_NAME" "$*" >&2
}

# --- configuration ------------------------------------------------------------------------------

DRY_RUN=0
ASSUME_YES=0
TRIGGER_LOCATION_FLAG=""

while [[ $# -gt 0 ]]; do
  case "$1" in
    --project) need_value "$@"; PROJECT="$2"; shift 2 ;;
    --region) need_value "$@"; REGION="$2"; shift 2 ;;
    --database) need_value "$@"; FIRESTORE_DATABASE="$2"; shift 2 ;;
    --runtime-sa) need_value "$@"; RUNTIME_SA="$2"; shift 2 ;;
    --trigger-sa) need_value "$@"; TRIGGER_SA="$2"; shift 2 ;;
    --scheduler-sa) need_value "$@"; SCHEDULER_SA="$2"; shift 2 ;;
    --bucket) need_value "$@"; ARTIFACTS_BUCKET="$2"; shift 2 ;;
    --prefix) need_value "$@"; ARTIFACTS_PREFIX="$2"; shift 2 ;;
    --gemini-secret) need_value "$@"; GEMINI_SECRET="$2"; shift 2 ;;
    --gemini-keys-secret) need_value "$@"; GEMINI_KEYS_SECRET="$2"; shift 2 ;;
    --gemini-key-id) need_value "$@"; GEMINI_API_KEY_ID="$2"; shift 2 ;;
    --allowed-models) need_value "$@"; GEMINI_ALLOWED_MODELS="$2"; shift 2 ;;
    --env) need_value "$@"; ENV="$2"; shift 2 ;;
    --log-level) need_value "$@"; LOG_LEVEL="$2"; shift 2 ;;
    --function-name) need_value "$@"; FUNCTION_NAME="$2"; shift 2 ;;
    --trigger-location) need_value "$@"; TRIGGER_LOCATION_FLAG="$2"; shift 2 ;;
    --dry-run) DRY_RUN=1; shift ;;
    -y | --yes) ASSUME_YES=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) die "$EXIT_USAGE" "unknown argument: $1 (see --help)" ;;
  esac
done

PROJECT="${PROJECT:-}"
REGION="${REGION:-}"
FIRESTORE_DATABASE="${FIRESTORE_DATABASE:-(default)}"
RUNTIME_SA="${RUNTIME_SA:-}"
TRIGGER_SA="${TRIGGER_SA:-}"
SCHEDULER_SA="${SCHEDULER_SA:-$TRIGGER_SA}"
ARTIFACTS_BUCKET="${ARTIFACTS_BUCKET:-}"
ARTIFACTS_PREFIX="${ARTIFACTS_PREFIX:-}"
GEMINI_SECRET="${GEMINI_SECRET:-}"
GEMINI_KEYS_SECRET="${GEMINI_KEYS_SECRET:-}"
GEMINI_API_KEY_ID="${GEMINI_API_KEY_ID:-}"
GEMINI_SECRET_VERSION="${GEMINI_SECRET_VERSION:-latest}"
GEMINI_ALLOWED_MODELS="${GEMINI_ALLOWED_MODELS:-}"
ENV="${ENV:-}"
LOG_LEVEL="${LOG_LEVEL:-}"
FUNCTION_NAME="${FUNCTION_NAME:-worker-llm-client}"
FINALIZE_BUDGET_SECONDS="${FINALIZE_BUDGET_SECONDS:-}"
GEMINI_TIMEOUT_SECONDS="${GEMINI_TIMEOUT_SECONDS:-}"
FLOW_RUNS_COLLECTION="${FLOW_RUNS_COLLECTION:-}"
LLM_PROMPTS_COLLECTION="${LLM_PROMPTS_COLLECTION:-}"
LLM_SCHEMAS_COLLECTION="${LLM_SCHEMAS_COLLECTION:-}"
MEMORY="${MEMORY:-$DEFAULT_MEMORY}"
CPU="${CPU:-}"
BUILD_SA="${BUILD_SA:-}"

validate() {
  local missing=() problems=() name
  for name in PROJECT REGION RUNTIME_SA TRIGGER_SA ARTIFACTS_BUCKET; do
    [[ -n "${!name}" ]] || missing+=("$name")
  done
  if [[ -z "$GEMINI_SECRET" && -z "$GEMINI_KEYS_SECRET" ]]; then
    missing+=("GEMINI_SECRET (or GEMINI_KEYS_SECRET + GEMINI_API_KEY_ID)")
  fi
  if [[ -n "$GEMINI_KEYS_SECRET" && -z "$GEMINI_API_KEY_ID" ]]; then
    missing+=("GEMINI_API_KEY_ID (required with GEMINI_KEYS_SECRET)")
  fi
  if [[ ${#missing[@]} -gt 0 ]]; then
    local joined
    joined="$(printf '%s, ' "${missing[@]}")"
    die "$EXIT_USAGE" "missing required variable(s): ${joined%, } (environment or flags, see --help)"
  fi

  if [[ -n "$GEMINI_SECRET" && -n "$GEMINI_KEYS_SECRET" ]]; then
    problems+=("set either GEMINI_SECRET or GEMINI_KEYS_SECRET, not both")
  fi
  if [[ -n "$GEMINI_API_KEY_ID" && -z "$GEMINI_KEYS_SECRET" ]]; then
    problems+=("GEMINI_API_KEY_ID only applies with GEMINI_KEYS_SECRET")
  fi
  for name in GEMINI_SECRET GEMINI_KEYS_SECRET; do
    if [[ -n "${!name}" && ! "${!name}" =~ ^[A-Za-z0-9_-]{1,255}$ ]]; then
      problems+=("$name must be a secret name (letters, digits, _ and -), not a path or a key")
    fi
  done
  if [[ ! "$GEMINI_SECRET_VERSION" =~ ^(latest|[1-9][0-9]*)$ ]]; then
    problems+=("GEMINI_SECRET_VERSION must be 'latest' or a version number")
  fi
  if [[ -n "$GEMINI_API_KEY_ID" && ! "$GEMINI_API_KEY_ID" =~ ^[A-Za-z0-9_.:-]{1,64}$ ]]; then
    problems+=("GEMINI_API_KEY_ID must be a short key id (letters, digits, _ . : -)")
  fi
  if [[ ! "$PROJECT" =~ ^[a-z][a-z0-9:.-]{4,}[a-z0-9]$ ]]; then
    problems+=("PROJECT must be a project id")
  fi
  if [[ ! "$REGION" =~ ^[a-z]+-[a-z]+[0-9]+$ ]]; then
    problems+=("REGION must be a single Cloud region such as us-central1 (multi-regions are not function regions)")
  fi
  if [[ -n "$TRIGGER_SA" && "$TRIGGER_SA" == "$RUNTIME_SA" ]]; then
    problems+=("TRIGGER_SA must be its own service account, not RUNTIME_SA (least privilege)")
  fi
  for name in RUNTIME_SA TRIGGER_SA SCHEDULER_SA BUILD_SA; do
    if [[ -n "${!name}" && ! "${!name}" =~ ^[^@[:space:]]+@[^@[:space:]]+$ ]]; then
      problems+=("$name must be a service account email")
    fi
  done
  ARTIFACTS_BUCKET="${ARTIFACTS_BUCKET#gs://}"
  ARTIFACTS_BUCKET="${ARTIFACTS_BUCKET%/}"
  if [[ ! "$ARTIFACTS_BUCKET" =~ ^[a-z0-9][a-z0-9._-]{1,221}[a-z0-9]$ ]]; then
    problems+=("ARTIFACTS_BUCKET must be a bucket name")
  fi
  if [[ ! "$FUNCTION_NAME" =~ ^[a-z]([a-z0-9-]{0,53}[a-z0-9])?$ ]]; then
    problems+=("FUNCTION_NAME must be lowercase letters, digits and -, at most 55 characters (it and FUNCTION_NAME-recover name Cloud Run services)")
  fi
  if [[ -n "$LOG_LEVEL" && ! "$LOG_LEVEL" =~ ^(DEBUG|INFO|WARNING|ERROR)$ ]]; then
    problems+=("LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR")
  fi
  for name in FINALIZE_BUDGET_SECONDS GEMINI_TIMEOUT_SECONDS; do
    if [[ -n "${!name}" && ! "${!name}" =~ ^[0-9]+([.][0-9]+)?$ ]]; then
      problems+=("$name must be a number of seconds")
    fi
  done
  if [[ "$FINALIZE_BUDGET_SECONDS" =~ ^([0-9]+) ]] \
    && ((10#${BASH_REMATCH[1]} >= INVOCATION_TIMEOUT_SECONDS)); then
    problems+=("FINALIZE_BUDGET_SECONDS must be smaller than $INVOCATION_TIMEOUT_SECONDS")
  fi
  for name in FLOW_RUNS_COLLECTION LLM_PROMPTS_COLLECTION LLM_SCHEMAS_COLLECTION; do
    if [[ "${!name}" == */* ]]; then
      problems+=("$name must not contain '/'")
    fi
  done
  if [[ -n "$CPU" && -z "$MEMORY" ]]; then
    problems+=("CPU needs MEMORY as well (gcloud accepts --cpu only with --memory)")
  fi
  for name in ARTIFACTS_PREFIX GEMINI_ALLOWED_MODELS ENV; do
    if [[ "${!name}" == *$'\n'* ]]; then
      problems+=("$name must be a single line")
    fi
  done
  if [[ -n "${GEMINI_API_KEY:-}" || -n "${GEMINI_API_KEYS_JSON:-}" ]]; then
    warn "a Gemini key variable is set in this shell; it is ignored (the function reads keys" \
      "from Secret Manager only). Consider unsetting it."
  fi
  if [[ ${#problems[@]} -gt 0 ]]; then
    printf 'deploy.sh: error: %s\n' "${problems[@]}" >&2
    exit "$EXIT_USAGE"
  fi

  command -v gcloud >/dev/null 2>&1 || die "$EXIT_USAGE" "gcloud is not on PATH"
  command -v uv >/dev/null 2>&1 || die "$EXIT_USAGE" "uv is not on PATH"
}

validate

# --- region alignment (read-only) ---------------------------------------------------------------

is_multi_region() {
  # Firestore multi-regions (nam5, nam7, eur3) carry no dash; regions always do.
  [[ "$1" != *-* ]]
}

check_locations() {
  local describe=(gcloud firestore databases describe "--database=$FIRESTORE_DATABASE"
    "--project=$PROJECT" "--format=value(locationId)")
  echo "Reading the Firestore database location: $(command_line "${describe[@]}")"
  if ! DB_LOCATION="$("${describe[@]}")"; then
    die "$EXIT_FAILED" "could not read the location of Firestore database '$FIRESTORE_DATABASE'" \
      "in project '$PROJECT' (does it exist, and may you read it?)"
  fi
  DB_LOCATION="$(printf '%s' "$DB_LOCATION" | tr -d '[:space:]')"
  [[ -n "$DB_LOCATION" ]] \
    || die "$EXIT_FAILED" "Firestore database '$FIRESTORE_DATABASE' reported no locationId"

  if [[ -z "$TRIGGER_LOCATION_FLAG" ]]; then
    TRIGGER_LOCATION="$REGION"
    if [[ "$DB_LOCATION" == "$REGION" ]]; then
      return 0
    fi
    if is_multi_region "$DB_LOCATION"; then
      die "$EXIT_LOCATION" "Firestore database '$FIRESTORE_DATABASE' is in the multi-region" \
        "'$DB_LOCATION' but REGION is '$REGION'. A Firestore Eventarc trigger must live in the" \
        "database location, and a function cannot run in a multi-region, so the two cannot be" \
        "equal. If you accept cross-region delivery, pass --trigger-location=$DB_LOCATION" \
        "explicitly (function in '$REGION', trigger in '$DB_LOCATION'). Nothing was changed."
    fi
    die "$EXIT_LOCATION" "Firestore database '$FIRESTORE_DATABASE' is in '$DB_LOCATION' but" \
      "REGION is '$REGION'. The function region, the Eventarc trigger location and the" \
      "database location must be the same (SPEC §15): deploy with REGION=$DB_LOCATION." \
      "Nothing was changed."
  fi

  TRIGGER_LOCATION="$TRIGGER_LOCATION_FLAG"
  if [[ "$TRIGGER_LOCATION" != "$DB_LOCATION" ]]; then
    die "$EXIT_LOCATION" "--trigger-location '$TRIGGER_LOCATION' differs from the location" \
      "'$DB_LOCATION' of Firestore database '$FIRESTORE_DATABASE'; Firestore events are only" \
      "delivered to triggers in the database location. Nothing was changed."
  fi
  if [[ "$DB_LOCATION" != "$REGION" ]] && ! is_multi_region "$DB_LOCATION"; then
    die "$EXIT_LOCATION" "Firestore database '$FIRESTORE_DATABASE' is in the region" \
      "'$DB_LOCATION' but REGION is '$REGION'; --trigger-location only bridges a multi-region" \
      "database. Deploy with REGION=$DB_LOCATION. Nothing was changed."
  fi
  if [[ "$DB_LOCATION" != "$REGION" ]]; then
    warn "function in '$REGION', trigger in the multi-region '$DB_LOCATION' (explicit" \
      "--trigger-location): events cross regions; keep REGION inside '$DB_LOCATION'."
  fi
}

check_locations

# --- the function's current state (read-only) ---------------------------------------------------

DESCRIBE_FUNCTION=(gcloud functions describe "$FUNCTION_NAME" --gen2 "--region=$REGION"
  "--project=$PROJECT" "--format=value(name)")
echo "Checking whether the function exists: $(command_line "${DESCRIBE_FUNCTION[@]}")"
if "${DESCRIBE_FUNCTION[@]}" >/dev/null 2>&1; then
  FUNCTION_STATE="exists: the deploy updates it in place (new revision)"
else
  FUNCTION_STATE="not found (or not readable): the deploy creates it"
fi

RECOVERY_FUNCTION="$FUNCTION_NAME-recover"
RECOVERY_JOB="$FUNCTION_NAME-recover-stale"
# Gen2 functions answer on their cloudfunctions.net address too: known before the deploy, and
# the audience of the scheduler's OIDC token.
RECOVERY_URL="https://$REGION-$PROJECT.cloudfunctions.net/$RECOVERY_FUNCTION"
DESCRIBE_JOB=(gcloud scheduler jobs describe "$RECOVERY_JOB" "--location=$REGION"
  "--project=$PROJECT" "--format=value(name)")
echo "Checking whether the recovery schedule exists: $(command_line "${DESCRIBE_JOB[@]}")"
if "${DESCRIBE_JOB[@]}" >/dev/null 2>&1; then
  JOB_VERB="update"
else
  JOB_VERB="create"
fi

# --- staging ------------------------------------------------------------------------------------

WORK_DIR="$(mktemp -d "${TMPDIR:-/tmp}/worker-llm-client-deploy.XXXXXX")"
cleanup_work_dir() {
  rm -rf -- "$WORK_DIR"
}
trap cleanup_work_dir EXIT
STAGE_DIR="$WORK_DIR/source"
ENV_VARS_FILE="$WORK_DIR/env.yaml"
mkdir -p "$STAGE_DIR"

stage_source() {
  local path
  for path in "${RUNTIME_PATHS[@]}"; do
    [[ -e "$REPO_ROOT/$path" ]] || die "$EXIT_FAILED" "runtime path missing from the repo: $path"
    cp -R "$REPO_ROOT/$path" "$STAGE_DIR/"
  done
  find "$STAGE_DIR" \( -name '__pycache__' -o -name '*.pyc' -o -name '.mypy_cache' \) \
    -prune -exec rm -rf {} +
  # gcloud refuses a local Python source without main.py (it checks before uploading, whatever
  # GOOGLE_FUNCTION_SOURCE says), and the runtime loads main.py: a two-line shim re-exports the
  # entry point from entry.py, which stays the composition root.
  cat >"$STAGE_DIR/main.py" <<PY
"""Generated by deploy/deploy.sh: Cloud Functions loads main.py; the code lives in $ENTRY_FILE."""

from ${ENTRY_FILE%.py} import $ENTRY_POINT, $RECOVERY_ENTRY_POINT

__all__ = ["$ENTRY_POINT", "$RECOVERY_ENTRY_POINT"]
PY
  if ! (cd "$REPO_ROOT" && uv export --format requirements.txt --no-dev --no-hashes \
    --no-emit-project --frozen --quiet --output-file "$STAGE_DIR/requirements.txt" >/dev/null); then
    die "$EXIT_FAILED" "uv export failed (is uv.lock up to date? run 'uv lock' and commit it)"
  fi
  grep -qi '^functions-framework==' "$STAGE_DIR/requirements.txt" \
    || die "$EXIT_FAILED" "the exported requirements.txt lacks functions-framework"
  # The staged code must not need what stays behind.
  local leaks
  leaks="$(grep -rlE '^[[:space:]]*(from|import)[[:space:]]+(devstack|tools|tests)([.[:space:]]|$)' \
    --include='*.py' "$STAGE_DIR" || true)"
  [[ -z "$leaks" ]] || die "$EXIT_FAILED" "runtime code imports devstack/tools/tests, which are" \
    "not deployed: ${leaks//$STAGE_DIR\//}"
}

stage_source

# --- environment of the function ----------------------------------------------------------------

yaml_value() {
  # YAML single-quoted scalar: only the quote itself needs escaping (doubled).
  printf "'%s'" "${1//\'/\'\'}"
}

env_entry() {
  # Only variables that are set go up; the function applies its own defaults to the others.
  [[ -n "$2" ]] || return 0
  printf '%s: %s\n' "$1" "$(yaml_value "$2")" >>"$ENV_VARS_FILE"
}

write_env_vars_file() {
  : >"$ENV_VARS_FILE"
  env_entry GCP_PROJECT "$PROJECT"
  env_entry GCP_REGION "$REGION"
  env_entry FIRESTORE_DATABASE "$FIRESTORE_DATABASE"
  env_entry ARTIFACTS_BUCKET "$ARTIFACTS_BUCKET"
  env_entry ARTIFACTS_PREFIX "$ARTIFACTS_PREFIX"
  env_entry GEMINI_ALLOWED_MODELS "$GEMINI_ALLOWED_MODELS"
  env_entry INVOCATION_TIMEOUT_SECONDS "$INVOCATION_TIMEOUT_SECONDS"
  env_entry FINALIZE_BUDGET_SECONDS "$FINALIZE_BUDGET_SECONDS"
  env_entry GEMINI_TIMEOUT_SECONDS "$GEMINI_TIMEOUT_SECONDS"
  env_entry GEMINI_API_KEY_ID "$GEMINI_API_KEY_ID"
  env_entry LOG_LEVEL "$LOG_LEVEL"
  env_entry ENV "$ENV"
  env_entry FLOW_RUNS_COLLECTION "$FLOW_RUNS_COLLECTION"
  env_entry LLM_PROMPTS_COLLECTION "$LLM_PROMPTS_COLLECTION"
  env_entry LLM_SCHEMAS_COLLECTION "$LLM_SCHEMAS_COLLECTION"
}

write_env_vars_file

if [[ -n "$GEMINI_KEYS_SECRET" ]]; then
  SECRET_NAME="$GEMINI_KEYS_SECRET"
  SECRET_ENV="GEMINI_API_KEYS_JSON"
else
  SECRET_NAME="$GEMINI_SECRET"
  SECRET_ENV="GEMINI_API_KEY"
fi
SECRET_REF="projects/$PROJECT/secrets/$SECRET_NAME:$GEMINI_SECRET_VERSION"
COLLECTION="${FLOW_RUNS_COLLECTION:-flow_runs}"

# --- the plan -----------------------------------------------------------------------------------

PLAN=()         # command lines, in execution order (eval'd verbatim)
PLAN_NOTES=()   # one description per command

plan() {
  local note="$1"
  shift
  PLAN_NOTES+=("$note")
  PLAN+=("$(command_line "$@")")
}

RUNTIME_MEMBER="serviceAccount:$RUNTIME_SA"
TRIGGER_MEMBER="serviceAccount:$TRIGGER_SA"

plan "runtime SA: read/write Firestore documents (project level)" \
  gcloud projects add-iam-policy-binding "$PROJECT" "--member=$RUNTIME_MEMBER" \
  --role=roles/datastore.user --condition=None
# Create and view only: the worker never deletes or overwrites (create-only writes), so it must
# not be able to, whatever a bug asks for; objectAdmin would let it erase other runs' reports.
plan "runtime SA: create objects in gs://$ARTIFACTS_BUCKET (never overwrite or delete)" \
  gcloud storage buckets add-iam-policy-binding "gs://$ARTIFACTS_BUCKET" \
  "--member=$RUNTIME_MEMBER" --role=roles/storage.objectCreator "--project=$PROJECT" \
  --condition=None
plan "runtime SA: read inputs and artifacts in gs://$ARTIFACTS_BUCKET" \
  gcloud storage buckets add-iam-policy-binding "gs://$ARTIFACTS_BUCKET" \
  "--member=$RUNTIME_MEMBER" --role=roles/storage.objectViewer "--project=$PROJECT" \
  --condition=None
plan "runtime SA: read the Gemini key secret '$SECRET_NAME' only" \
  gcloud secrets add-iam-policy-binding "$SECRET_NAME" "--member=$RUNTIME_MEMBER" \
  --role=roles/secretmanager.secretAccessor "--project=$PROJECT" --condition=None
plan "trigger SA: receive Eventarc events (project level)" \
  gcloud projects add-iam-policy-binding "$PROJECT" "--member=$TRIGGER_MEMBER" \
  --role=roles/eventarc.eventReceiver --condition=None

DEPLOY=(gcloud functions deploy "$FUNCTION_NAME" --gen2 "--project=$PROJECT" "--region=$REGION"
  "--runtime=$RUNTIME" "--source=$STAGE_DIR" "--entry-point=$ENTRY_POINT"
  "--service-account=$RUNTIME_SA" "--timeout=${INVOCATION_TIMEOUT_SECONDS}s" --concurrency=1
  "--env-vars-file=$ENV_VARS_FILE" "--set-secrets=$SECRET_ENV=$SECRET_REF"
  "--trigger-location=$TRIGGER_LOCATION"
  "--trigger-event-filters=type=$EVENT_TYPE"
  "--trigger-event-filters=database=$FIRESTORE_DATABASE"
  "--trigger-event-filters-path-pattern=document=$COLLECTION/{runId}"
  "--trigger-service-account=$TRIGGER_SA")
[[ -z "$MEMORY" ]] || DEPLOY+=("--memory=$MEMORY")
[[ -z "$CPU" ]] || DEPLOY+=("--cpu=$CPU")
[[ -z "$BUILD_SA" ]] \
  || DEPLOY+=("--build-service-account=projects/$PROJECT/serviceAccounts/$BUILD_SA")
plan "deploy (create or update) the function and its Firestore trigger" "${DEPLOY[@]}"

plan "trigger SA: invoke the function's Cloud Run service" \
  gcloud run services add-iam-policy-binding "$FUNCTION_NAME" "--region=$REGION" \
  "--project=$PROJECT" "--member=$TRIGGER_MEMBER" --role=roles/run.invoker --condition=None

RECOVERY=(gcloud functions deploy "$RECOVERY_FUNCTION" --gen2 "--project=$PROJECT"
  "--region=$REGION" "--runtime=$RUNTIME" "--source=$STAGE_DIR"
  "--entry-point=$RECOVERY_ENTRY_POINT" "--service-account=$RUNTIME_SA"
  "--timeout=${INVOCATION_TIMEOUT_SECONDS}s" --concurrency=1 --max-instances=1
  "--env-vars-file=$ENV_VARS_FILE" "--set-secrets=$SECRET_ENV=$SECRET_REF"
  --trigger-http --no-allow-unauthenticated)
[[ -z "$MEMORY" ]] || RECOVERY+=("--memory=$MEMORY")
[[ -z "$CPU" ]] || RECOVERY+=("--cpu=$CPU")
[[ -z "$BUILD_SA" ]] \
  || RECOVERY+=("--build-service-account=projects/$PROJECT/serviceAccounts/$BUILD_SA")
plan "deploy (create or update) the stale-step recovery as an authenticated HTTP function" \
  "${RECOVERY[@]}"

SCHEDULER_MEMBER="serviceAccount:$SCHEDULER_SA"
plan "scheduler SA: invoke the recovery function's Cloud Run service only" \
  gcloud run services add-iam-policy-binding "$RECOVERY_FUNCTION" "--region=$REGION" \
  "--project=$PROJECT" "--member=$SCHEDULER_MEMBER" --role=roles/run.invoker --condition=None
plan "$JOB_VERB the Cloud Scheduler job calling the recovery every 10 minutes (OIDC)" \
  gcloud scheduler jobs "$JOB_VERB" http "$RECOVERY_JOB" "--location=$REGION" \
  "--project=$PROJECT" "--schedule=$RECOVERY_SCHEDULE" --time-zone=Etc/UTC \
  "--uri=$RECOVERY_URL" --http-method=POST "--oidc-service-account-email=$SCHEDULER_SA" \
  "--oidc-token-audience=$RECOVERY_URL" --attempt-deadline=30m

print_plan() {
  local i file
  echo
  echo "=== Deployment plan: $FUNCTION_NAME ==="
  echo "project:            $PROJECT"
  echo "region:             $REGION"
  echo "firestore database: $FIRESTORE_DATABASE (location $DB_LOCATION)"
  echo "trigger:            $EVENT_TYPE on $COLLECTION/{runId}, location $TRIGGER_LOCATION"
  echo "runtime SA:         $RUNTIME_SA"
  echo "trigger SA:         $TRIGGER_SA"
  echo "recovery:           $RECOVERY_FUNCTION ($RECOVERY_URL), $RECOVERY_SCHEDULE by $RECOVERY_JOB"
  echo "scheduler SA:       $SCHEDULER_SA"
  echo "Gemini key:         $SECRET_ENV <- secret $SECRET_REF"
  echo "function:           $FUNCTION_STATE"
  echo
  echo "Staged source ($STAGE_DIR):"
  while IFS= read -r file; do
    echo "  $file"
  done < <(cd "$STAGE_DIR" && find . -type f | sed 's|^\./||' | sort)
  echo
  echo "Function environment ($ENV_VARS_FILE):"
  sed 's/^/  /' "$ENV_VARS_FILE"
  echo
  echo "Commands, in order:"
  for i in "${!PLAN[@]}"; do
    printf '  [%d/%d] %s\n' "$((i + 1))" "${#PLAN[@]}" "${PLAN_NOTES[$i]}"
    printf '        %s\n' "${PLAN[$i]}"
  done
  echo
}

print_plan

if [[ "$DRY_RUN" -eq 1 ]]; then
  echo "Dry run: nothing was changed."
  exit 0
fi

ask_to_proceed changed || exit "$EXIT_NOT_CONFIRMED"

for i in "${!PLAN[@]}"; do
  printf '\n[%d/%d] %s\n+ %s\n' "$((i + 1))" "${#PLAN[@]}" "${PLAN_NOTES[$i]}" "${PLAN[$i]}"
  if ! eval "${PLAN[$i]}"; then
    die "$EXIT_FAILED" "step $((i + 1))/${#PLAN[@]} failed: ${PLAN_NOTES[$i]}. Steps before it" \
      "were applied; every step is idempotent, so fix the cause and re-run."
  fi
done

echo
echo "Deployed $FUNCTION_NAME in $REGION (trigger $EVENT_TYPE on $COLLECTION/{runId})"
echo "and $RECOVERY_FUNCTION, called by $RECOVERY_JOB ($RECOVERY_SCHEDULE)."
echo "Next: deploy/smoke.sh (see deploy/README.md)."

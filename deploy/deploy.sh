#!/usr/bin/env bash
# Deploys one TDA worker (--worker; default llm-client): its Cloud Functions gen2 CloudEvent
# function on its Firestore trigger, its stale-work recovery as an authenticated HTTP function
# called by Cloud Scheduler every 10 minutes (COMMON.md §2), and the least-privilege IAM
# bindings both need. What differs between workers lives in deploy/workers/<worker>.sh.
#
# The script only ever handles secret *names*; key material stays in Secret Manager.
# Run `deploy/deploy.sh --help` (with --worker) for the variables and flags.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/.." && pwd)"

RECOVERY_SCHEDULE="*/10 * * * *"
ENTRY_FILE="entry.py"
RUNTIME="python312"
# Runtime code only: no tests, devstack, tools, examples or docs go up.
RUNTIME_PATHS=("$ENTRY_FILE" compose.py engine states adapters wheelsim)

# Exit codes.
SCRIPT_NAME=deploy.sh
# shellcheck source=deploy/common.sh
source "$SCRIPT_DIR/common.sh" # EXIT_FAILED=1 a command failed, EXIT_USAGE=2, EXIT_NOT_CONFIRMED=4
EXIT_LOCATION=3 # Firestore location and REGION do not line up

warn() {
  printf '%s: warning: %s\n' "$SCRIPT_NAME" "$*" >&2
}

is_secret_name() {
  [[ "$1" =~ ^[A-Za-z0-9_-]{1,255}$ ]]
}

bucket_name() {
  local bucket="${1#gs://}"
  printf '%s' "${bucket%/}"
}

is_bucket_name() {
  [[ "$1" =~ ^[a-z0-9][a-z0-9._-]{1,221}[a-z0-9]$ ]]
}

is_seconds() {
  [[ "$1" =~ ^[0-9]+([.][0-9]+)?$ ]]
}

# --- the worker ---------------------------------------------------------------------------------

known_workers() {
  local profile names=()
  for profile in "$SCRIPT_DIR"/workers/*.sh; do
    names+=("$(basename "$profile" .sh)")
  done
  printf '%s' "${names[*]}"
}

WORKER="${WORKER:-llm-client}"
ARGS=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --worker) need_value "$@"; WORKER="$2"; shift 2 ;;
    *) ARGS+=("$1"); shift ;;
  esac
done
[[ "$WORKER" =~ ^[a-z][a-z-]*$ && -f "$SCRIPT_DIR/workers/$WORKER.sh" ]] \
  || die "$EXIT_USAGE" "unknown worker '$WORKER' (one of: $(known_workers))"
# shellcheck source=deploy/workers/llm-client.sh
source "$SCRIPT_DIR/workers/$WORKER.sh"
set -- ${ARGS[@]+"${ARGS[@]}"}

usage() {
  cat <<EOF
Usage: deploy/deploy.sh [--worker NAME] [flags]

Deploys the worker NAME (default llm-client; one of: $(known_workers)): its Cloud Functions
gen2 function with its Eventarc Firestore trigger; its stale-work recovery as an authenticated HTTP function
(FUNCTION_NAME-recover) with a Cloud Scheduler job calling it every 10 minutes (OIDC); and the
least-privilege IAM bindings they need. No retry policy is set: work an invocation leaves
unfinished is finished by the recovery. First deploy and update are the same command. The full
plan (every gcloud command) is printed first; nothing changes until you confirm.

Every setting is an environment variable; the flags override them.

Required:
  PROJECT              --project ID            Google Cloud project id
  REGION               --region REGION         function region; must equal the Firestore location
  RUNTIME_SA           --runtime-sa EMAIL      service account the functions run as
  TRIGGER_SA           --trigger-sa EMAIL      Eventarc trigger identity; its own account,
                                               not RUNTIME_SA (it may only receive and invoke)

Optional:
  FIRESTORE_DATABASE   --database ID           Firestore database (default: (default))
  SCHEDULER_SA         --scheduler-sa EMAIL    identity of the Cloud Scheduler job calling the
                                               recovery function (default: TRIGGER_SA)
  ENV                  --env NAME              environment label written on every log line
  LOG_LEVEL            --log-level LEVEL       DEBUG|INFO|WARNING|ERROR
  FUNCTION_NAME        --function-name NAME    function and Cloud Run service name
                                               (default: $DEFAULT_FUNCTION_NAME)
  EVENT_TYPE           --event-type TYPE       the trigger's Firestore event type
                                               (default: $DEFAULT_EVENT_TYPE)
  FINALIZE_BUDGET_SECONDS, $COLLECTION_VARIABLE
                                               passed to the function when set; the collection
                                               also sets the trigger path
  MEMORY, CPU, MAX_INSTANCES                   --memory/--cpu/--max-instances of the function
                                               (MEMORY default $DEFAULT_MEMORY)
  BUILD_SA                                     service account email for the Cloud Build step
                                               (--build-service-account; not passed unless set)

EOF
  profile_usage
  cat <<'EOF'

Flags:
  --worker NAME           the worker to deploy (default llm-client)
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
    --env) need_value "$@"; ENV="$2"; shift 2 ;;
    --log-level) need_value "$@"; LOG_LEVEL="$2"; shift 2 ;;
    --function-name) need_value "$@"; FUNCTION_NAME="$2"; shift 2 ;;
    --event-type) need_value "$@"; EVENT_TYPE="$2"; shift 2 ;;
    --trigger-location) need_value "$@"; TRIGGER_LOCATION_FLAG="$2"; shift 2 ;;
    --dry-run) DRY_RUN=1; shift ;;
    -y | --yes) ASSUME_YES=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *)
      PROFILE_SHIFT=0
      profile_flag "$@" || die "$EXIT_USAGE" "unknown argument: $1 (see --help)"
      shift "$PROFILE_SHIFT"
      ;;
  esac
done

PROJECT="${PROJECT:-}"
REGION="${REGION:-}"
FIRESTORE_DATABASE="${FIRESTORE_DATABASE:-(default)}"
RUNTIME_SA="${RUNTIME_SA:-}"
TRIGGER_SA="${TRIGGER_SA:-}"
SCHEDULER_SA="${SCHEDULER_SA:-$TRIGGER_SA}"
ENV="${ENV:-}"
LOG_LEVEL="${LOG_LEVEL:-}"
FUNCTION_NAME="${FUNCTION_NAME:-$DEFAULT_FUNCTION_NAME}"
EVENT_TYPE="${EVENT_TYPE:-$DEFAULT_EVENT_TYPE}"
FINALIZE_BUDGET_SECONDS="${FINALIZE_BUDGET_SECONDS:-}"
COLLECTION_SETTING="${!COLLECTION_VARIABLE:-}"
MEMORY="${MEMORY:-$DEFAULT_MEMORY}"
CPU="${CPU:-}"
MAX_INSTANCES="${MAX_INSTANCES:-$DEFAULT_MAX_INSTANCES}"
BUILD_SA="${BUILD_SA:-}"
profile_defaults

validate() {
  local missing=() problems=() name
  for name in PROJECT REGION RUNTIME_SA TRIGGER_SA; do
    [[ -n "${!name}" ]] || missing+=("$name")
  done
  profile_validate
  if [[ ${#missing[@]} -gt 0 ]]; then
    local joined
    joined="$(printf '%s, ' "${missing[@]}")"
    die "$EXIT_USAGE" "missing required variable(s): ${joined%, } (environment or flags, see --help)"
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
  if [[ ! "$FUNCTION_NAME" =~ ^[a-z]([a-z0-9-]{0,53}[a-z0-9])?$ ]]; then
    problems+=("FUNCTION_NAME must be lowercase letters, digits and -, at most 55 characters (it and FUNCTION_NAME-recover name Cloud Run services)")
  fi
  if [[ ! "$EVENT_TYPE" =~ ^google[.]cloud[.]firestore[.]document[.]v1[.](created|updated|written)([.]withAuthContext)?$ ]]; then
    problems+=("EVENT_TYPE must be a Firestore document event type (created, updated or written)")
  fi
  if [[ -n "$LOG_LEVEL" && ! "$LOG_LEVEL" =~ ^(DEBUG|INFO|WARNING|ERROR)$ ]]; then
    problems+=("LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR")
  fi
  if [[ -n "$FINALIZE_BUDGET_SECONDS" ]] && ! is_seconds "$FINALIZE_BUDGET_SECONDS"; then
    problems+=("FINALIZE_BUDGET_SECONDS must be a number of seconds")
  fi
  if [[ "$FINALIZE_BUDGET_SECONDS" =~ ^([0-9]+) ]] \
    && ((10#${BASH_REMATCH[1]} >= INVOCATION_TIMEOUT_SECONDS)); then
    problems+=("FINALIZE_BUDGET_SECONDS must be smaller than $INVOCATION_TIMEOUT_SECONDS")
  fi
  if [[ "$COLLECTION_SETTING" == */* ]]; then
    problems+=("$COLLECTION_VARIABLE must not contain '/'")
  fi
  if [[ -n "$CPU" && -z "$MEMORY" ]]; then
    problems+=("CPU needs MEMORY as well (gcloud accepts --cpu only with --memory)")
  fi
  if [[ -n "$MAX_INSTANCES" && ! "$MAX_INSTANCES" =~ ^[1-9][0-9]*$ ]]; then
    problems+=("MAX_INSTANCES must be a positive whole number")
  fi
  if [[ "$ENV" == *$'\n'* ]]; then
    problems+=("ENV must be a single line")
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

WORK_DIR="$(mktemp -d "${TMPDIR:-/tmp}/$FUNCTION_NAME-deploy.XXXXXX")"
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
  env_entry INVOCATION_TIMEOUT_SECONDS "$INVOCATION_TIMEOUT_SECONDS"
  env_entry FINALIZE_BUDGET_SECONDS "$FINALIZE_BUDGET_SECONDS"
  env_entry LOG_LEVEL "$LOG_LEVEL"
  env_entry ENV "$ENV"
  env_entry "$COLLECTION_VARIABLE" "$COLLECTION_SETTING"
  profile_env_vars
}

write_env_vars_file

SECRET_NAME=""
SECRET_ENV=""
SECRET_REF=""
profile_secret
SECRETS=()
[[ -z "$SECRET_REF" ]] || SECRETS=("--set-secrets=$SECRET_ENV=$SECRET_REF")
COLLECTION="${COLLECTION_SETTING:-$DEFAULT_COLLECTION}"

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

# plan_bucket_role NOTE BUCKET ROLE: one role for the runtime account on one bucket (profiles).
plan_bucket_role() {
  plan "runtime SA: $1" \
    gcloud storage buckets add-iam-policy-binding "gs://$2" \
    "--member=$RUNTIME_MEMBER" "--role=roles/$3" "--project=$PROJECT" --condition=None
}

plan "runtime SA: read/write Firestore documents (project level)" \
  gcloud projects add-iam-policy-binding "$PROJECT" "--member=$RUNTIME_MEMBER" \
  --role=roles/datastore.user --condition=None
profile_plan_iam
# The secret the functions mount (profile_secret), and no other.
[[ -z "$SECRET_NAME" ]] || plan "runtime SA: read the secret '$SECRET_NAME' ($SECRET_ENV) only" \
  gcloud secrets add-iam-policy-binding "$SECRET_NAME" "--member=$RUNTIME_MEMBER" \
  --role=roles/secretmanager.secretAccessor "--project=$PROJECT" --condition=None
plan "trigger SA: receive Eventarc events (project level)" \
  gcloud projects add-iam-policy-binding "$PROJECT" "--member=$TRIGGER_MEMBER" \
  --role=roles/eventarc.eventReceiver --condition=None

DEPLOY=(gcloud functions deploy "$FUNCTION_NAME" --gen2 "--project=$PROJECT" "--region=$REGION"
  "--runtime=$RUNTIME" "--source=$STAGE_DIR" "--entry-point=$ENTRY_POINT"
  "--service-account=$RUNTIME_SA" "--timeout=${INVOCATION_TIMEOUT_SECONDS}s" --concurrency=1
  "--env-vars-file=$ENV_VARS_FILE" ${SECRETS[@]+"${SECRETS[@]}"}
  "--trigger-location=$TRIGGER_LOCATION"
  "--trigger-event-filters=type=$EVENT_TYPE"
  "--trigger-event-filters=database=$FIRESTORE_DATABASE"
  "--trigger-event-filters-path-pattern=document=$COLLECTION/$DOCUMENT_PARAMETER"
  "--trigger-service-account=$TRIGGER_SA")
[[ -z "$MEMORY" ]] || DEPLOY+=("--memory=$MEMORY")
[[ -z "$MAX_INSTANCES" ]] || DEPLOY+=("--max-instances=$MAX_INSTANCES")
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
  "--env-vars-file=$ENV_VARS_FILE" ${SECRETS[@]+"${SECRETS[@]}"}
  --trigger-http --no-allow-unauthenticated)
[[ -z "$MEMORY" ]] || RECOVERY+=("--memory=$MEMORY")
[[ -z "$CPU" ]] || RECOVERY+=("--cpu=$CPU")
[[ -z "$BUILD_SA" ]] \
  || RECOVERY+=("--build-service-account=projects/$PROJECT/serviceAccounts/$BUILD_SA")
plan "deploy (create or update) the stale-work recovery as an authenticated HTTP function" \
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
profile_plan_after

print_plan() {
  local i file
  echo
  echo "=== Deployment plan: $FUNCTION_NAME ($WORKER_LABEL) ==="
  echo "project:            $PROJECT"
  echo "region:             $REGION"
  echo "firestore database: $FIRESTORE_DATABASE (location $DB_LOCATION)"
  echo "trigger:            $EVENT_TYPE on $COLLECTION/$DOCUMENT_PARAMETER, location $TRIGGER_LOCATION"
  echo "runtime SA:         $RUNTIME_SA"
  echo "trigger SA:         $TRIGGER_SA"
  echo "recovery:           $RECOVERY_FUNCTION ($RECOVERY_URL), $RECOVERY_SCHEDULE by $RECOVERY_JOB"
  echo "scheduler SA:       $SCHEDULER_SA"
  profile_summary
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
echo "Deployed $FUNCTION_NAME in $REGION (trigger $EVENT_TYPE on $COLLECTION/$DOCUMENT_PARAMETER)"
echo "and $RECOVERY_FUNCTION, called by $RECOVERY_JOB ($RECOVERY_SCHEDULE)."
[[ "$WORKER" != llm-client ]] || echo "Next: deploy/smoke.sh (see deploy/README.md)."

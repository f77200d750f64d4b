# shellcheck shell=bash disable=SC2034  # the variables are read by deploy.sh, which sources this
# Deploy profile of worker_chart_export (CHART_EXPORT §19), sourced by `deploy/deploy.sh
# --worker chart-export`: its entry points, timeouts, variables, its one secret (the Chart-IMG
# accounts) and the IAM bindings its own runtime account needs beyond Firestore.

WORKER_LABEL="worker_chart_export"
DEFAULT_FUNCTION_NAME="worker-chart-export"
ENTRY_POINT="on_chart_export_flow_run_updated"
RECOVERY_ENTRY_POINT="recover_stale_chart_steps"
INVOCATION_TIMEOUT_SECONDS=540
# At most 10 PNGs of ≤ 256 KiB each are held at once; the LLM worker's 512Mi leaves room.
DEFAULT_MEMORY="512Mi"
DEFAULT_EVENT_TYPE="google.cloud.firestore.document.v1.updated"
COLLECTION_VARIABLE="FLOW_RUNS_COLLECTION"
DEFAULT_COLLECTION="flow_runs"
DOCUMENT_PARAMETER="{runId}"
# §19: also bounds the contention of instances on the usage documents.
DEFAULT_MAX_INSTANCES="10"
CHART_PLANS="BASIC PRO MEGA ULTRA ENTERPRISE"

profile_usage() {
  cat <<'EOF2'
Worker chart-export (CHART_EXPORT §19): entry point on_chart_export_flow_run_updated, trigger
google.cloud.firestore.document.v1.updated on flow_runs/{runId}, recovery
recover_stale_chart_steps, CHARTS_API_MODE=real, --max-instances=10 (MAX_INSTANCES).
Give it its own RUNTIME_SA: it may read the Chart-IMG secret only, never the Gemini one.

Required for this worker:
  ARTIFACTS_BUCKET     --bucket NAME           bucket for PNGs and manifests (name or gs://name)

Optional for this worker:
  CHARTS_SECRET        --charts-secret NAME    secret NAME holding the accounts JSON
                                               -> CHART_IMG_ACCOUNTS_JSON
                                               (default: chart-img-accounts)
  CHARTS_SECRET_VERSION                        secret version to mount (default: latest);
                                               new versions reach new instances only
  CHART_IMG_PLAN       --plan PLAN             BASIC|PRO|MEGA|ULTRA|ENTERPRISE (default BASIC)
  ARTIFACTS_PREFIX     --prefix PREFIX         object prefix inside ARTIFACTS_BUCKET
  CHART_TEMPLATES_COLLECTION, CHART_IMG_USAGE_COLLECTION, CHARTS_DEFAULT_TIMEZONE,
  CHART_IMG_DEFAULT_DAILY_LIMIT, CHART_IMG_TIMEOUT_SECONDS, CHART_IMG_REQUESTS_PER_SECOND,
  CHART_IMG_MAX_ATTEMPTS_PER_REQUEST, CHART_IMG_MAX_ATTEMPTS_PER_STEP, CHART_RENDER_CONCURRENCY,
  CHART_IMG_MAX_PNG_BYTES, STALE_STEP_LEASE_SECONDS
                                               passed to the function when set (§16; the
                                               function validates them at start)
EOF2
}

CHART_SETTINGS=(
  CHART_TEMPLATES_COLLECTION CHART_IMG_USAGE_COLLECTION CHARTS_DEFAULT_TIMEZONE
  CHART_IMG_DEFAULT_DAILY_LIMIT CHART_IMG_TIMEOUT_SECONDS CHART_IMG_REQUESTS_PER_SECOND
  CHART_IMG_MAX_ATTEMPTS_PER_REQUEST CHART_IMG_MAX_ATTEMPTS_PER_STEP CHART_RENDER_CONCURRENCY
  CHART_IMG_MAX_PNG_BYTES STALE_STEP_LEASE_SECONDS
)

# Consumes a flag of this worker and sets PROFILE_SHIFT to the words used, or returns 1.
profile_flag() {
  case "$1" in
    --bucket) need_value "$@"; ARTIFACTS_BUCKET="$2" ;;
    --prefix) need_value "$@"; ARTIFACTS_PREFIX="$2" ;;
    --charts-secret) need_value "$@"; CHARTS_SECRET="$2" ;;
    --plan) need_value "$@"; CHART_IMG_PLAN="$2" ;;
    *) return 1 ;;
  esac
  PROFILE_SHIFT=2
}

profile_defaults() {
  local name
  ARTIFACTS_BUCKET="${ARTIFACTS_BUCKET:-}"
  ARTIFACTS_PREFIX="${ARTIFACTS_PREFIX:-}"
  CHARTS_SECRET="${CHARTS_SECRET:-chart-img-accounts}"
  CHARTS_SECRET_VERSION="${CHARTS_SECRET_VERSION:-latest}"
  CHART_IMG_PLAN="${CHART_IMG_PLAN:-BASIC}"
  for name in "${CHART_SETTINGS[@]}"; do
    printf -v "$name" '%s' "${!name:-}"
  done
}

# Appends to the `missing` and `problems` arrays of deploy.sh's validate() (its locals).
profile_validate() {
  local name
  [[ -n "$ARTIFACTS_BUCKET" ]] || missing+=("ARTIFACTS_BUCKET")
  if ! is_secret_name "$CHARTS_SECRET"; then
    problems+=("CHARTS_SECRET must be a secret name (letters, digits, _ and -), not a path or a key")
  fi
  if [[ ! "$CHARTS_SECRET_VERSION" =~ ^(latest|[1-9][0-9]*)$ ]]; then
    problems+=("CHARTS_SECRET_VERSION must be 'latest' or a version number")
  fi
  if [[ " $CHART_PLANS " != *" $CHART_IMG_PLAN "* ]]; then
    problems+=("CHART_IMG_PLAN must be one of $CHART_PLANS")
  fi
  ARTIFACTS_BUCKET="$(bucket_name "$ARTIFACTS_BUCKET")"
  if [[ -n "$ARTIFACTS_BUCKET" ]] && ! is_bucket_name "$ARTIFACTS_BUCKET"; then
    problems+=("ARTIFACTS_BUCKET must be a bucket name")
  fi
  for name in CHART_TEMPLATES_COLLECTION CHART_IMG_USAGE_COLLECTION; do
    if [[ "${!name}" == */* ]]; then
      problems+=("$name must not contain '/'")
    fi
  done
  for name in ARTIFACTS_PREFIX "${CHART_SETTINGS[@]}"; do
    if [[ "${!name}" == *$'\n'* ]]; then
      problems+=("$name must be a single line")
    fi
  done
  if [[ -n "${CHART_IMG_ACCOUNTS_JSON:-}" ]]; then
    warn "CHART_IMG_ACCOUNTS_JSON is set in this shell; it is ignored (the function reads the" \
      "accounts from Secret Manager only). Consider unsetting it."
  fi
}

profile_env_vars() {
  local name
  env_entry ARTIFACTS_BUCKET "$ARTIFACTS_BUCKET"
  env_entry ARTIFACTS_PREFIX "$ARTIFACTS_PREFIX"
  env_entry CHARTS_API_MODE real
  env_entry CHART_IMG_PLAN "$CHART_IMG_PLAN"
  for name in "${CHART_SETTINGS[@]}"; do
    env_entry "$name" "${!name}"
  done
}

# Sets SECRET_NAME, SECRET_ENV and SECRET_REF: the one secret the functions mount.
profile_secret() {
  SECRET_NAME="$CHARTS_SECRET"
  SECRET_ENV="CHART_IMG_ACCOUNTS_JSON"
  SECRET_REF="projects/$PROJECT/secrets/$SECRET_NAME:$CHARTS_SECRET_VERSION"
}

# The runtime account's bindings beyond Firestore and the secret (deploy.sh plans those).
profile_plan_iam() {
  # Create and view only: PNGs and manifests are create-only, so the worker must not be able
  # to overwrite or delete anything, whatever a bug asks for.
  plan_bucket_role "create objects in gs://$ARTIFACTS_BUCKET (never overwrite or delete)" \
    "$ARTIFACTS_BUCKET" storage.objectCreator
  plan_bucket_role "look up PNGs and read manifests in gs://$ARTIFACTS_BUCKET" \
    "$ARTIFACTS_BUCKET" storage.objectViewer
}

# Steps after the functions and the schedule (none for this worker).
profile_plan_after() {
  :
}

profile_summary() {
  echo "artifacts:          gs://$ARTIFACTS_BUCKET${ARTIFACTS_PREFIX:+ (prefix $ARTIFACTS_PREFIX)}"
  echo "Chart-IMG accounts: $SECRET_ENV <- secret $SECRET_REF (plan $CHART_IMG_PLAN)"
}

# shellcheck shell=bash disable=SC2034  # the variables are read by deploy.sh, which sources this
# Deploy profile of worker_backtest (BACKTEST §15), sourced by `deploy/deploy.sh --worker
# backtest`: the job function on `created` events of backtestJobs/{jobId} (`--requeue`: on
# `written`, so operator re-queues run too), the sweeper sweep_stale_jobs (deployed by deploy.sh
# as FUNCTION_NAME-recover, with its Cloud Scheduler job), read-only access to the history
# bucket, and the Firestore security rules, released only on --release-rules (COMMON.md §8).

WORKER_LABEL="worker_backtest"
DEFAULT_FUNCTION_NAME="worker-backtest"
ENTRY_POINT="on_backtest_job_written"
RECOVERY_ENTRY_POINT="sweep_stale_jobs"
INVOCATION_TIMEOUT_SECONDS=540
# bench/backtest_memory.py: the worst accepted job (a 4 MiB history CSV) peaks at 136 MB RSS;
# 256Mi would hold it, but 512Mi also doubles the CPU share (cold start, the CSV parse).
DEFAULT_MEMORY="512Mi"
DEFAULT_EVENT_TYPE="google.cloud.firestore.document.v1.created"
WRITTEN_EVENT_TYPE="google.cloud.firestore.document.v1.written"
COLLECTION_VARIABLE="BACKTEST_JOBS_COLLECTION"
DEFAULT_COLLECTION="backtestJobs"
DOCUMENT_PARAMETER="{jobId}"
DEFAULT_MAX_INSTANCES=""
RULES_FILE="firestore.rules"

profile_usage() {
  cat <<'EOF'
Worker backtest (BACKTEST §15): entry point on_backtest_job_written, trigger
google.cloud.firestore.document.v1.created on backtestJobs/{jobId}, sweeper sweep_stale_jobs
(FUNCTION_NAME-recover, every 10 minutes).

Optional for this worker:
  HISTORY_BUCKET       --history-bucket NAME   bucket of the daily-close CSVs of `history` jobs;
                                               the runtime account may only read it. Unset:
                                               history jobs fail HISTORY_UNAVAILABLE.
  HISTORY_PREFIX       --history-prefix PREFIX object prefix inside HISTORY_BUCKET
  HISTORY_MAX_BYTES, JOB_LEASE_SECONDS, BACKTEST_RESULTS_COLLECTION
                                               passed to the function when set (BACKTEST §12)
  MEMORY default 512Mi (bench/backtest_memory.py: the worst accepted job peaks at 136 MB)

Flags for this worker:
  --requeue               trigger on google.cloud.firestore.document.v1.written instead of
                          created, so a job an operator re-queues (failed -> queued) runs again;
                          every write of the worker then wakes it once more, as a no-op
  --release-rules         also release firestore.rules to the database with the Firebase CLI.
                          This REPLACES THE DATABASE'S WHOLE RULESET: only for a database whose
                          rules are exactly this file. Without it, nothing is released and the
                          plan says where the file is, for merging into the app's own rules.
EOF
}

# Consumes a flag of this worker and sets PROFILE_SHIFT to the words used, or returns 1.
profile_flag() {
  case "$1" in
    --history-bucket) need_value "$@"; HISTORY_BUCKET="$2"; PROFILE_SHIFT=2 ;;
    --history-prefix) need_value "$@"; HISTORY_PREFIX="$2"; PROFILE_SHIFT=2 ;;
    --requeue) EVENT_TYPE="$WRITTEN_EVENT_TYPE"; PROFILE_SHIFT=1 ;;
    --release-rules) RELEASE_RULES=1; PROFILE_SHIFT=1 ;;
    *) return 1 ;;
  esac
}

profile_defaults() {
  HISTORY_BUCKET="${HISTORY_BUCKET:-}"
  HISTORY_PREFIX="${HISTORY_PREFIX:-}"
  HISTORY_MAX_BYTES="${HISTORY_MAX_BYTES:-}"
  JOB_LEASE_SECONDS="${JOB_LEASE_SECONDS:-}"
  BACKTEST_RESULTS_COLLECTION="${BACKTEST_RESULTS_COLLECTION:-}"
  RELEASE_RULES="${RELEASE_RULES:-0}"
}

# Appends to the `missing` and `problems` arrays of deploy.sh's validate() (its locals).
profile_validate() {
  HISTORY_BUCKET="$(bucket_name "$HISTORY_BUCKET")"
  if [[ -n "$HISTORY_BUCKET" ]] && ! is_bucket_name "$HISTORY_BUCKET"; then
    problems+=("HISTORY_BUCKET must be a bucket name")
  fi
  if [[ -z "$HISTORY_BUCKET" && -n "$HISTORY_PREFIX" ]]; then
    problems+=("HISTORY_PREFIX needs HISTORY_BUCKET")
  fi
  if [[ "$HISTORY_PREFIX" == *$'\n'* || "/$HISTORY_PREFIX/" == */../* ]]; then
    problems+=("HISTORY_PREFIX must be a single line without '..' segments")
  fi
  if [[ -n "$HISTORY_MAX_BYTES" && ! "$HISTORY_MAX_BYTES" =~ ^[1-9][0-9]*$ ]]; then
    problems+=("HISTORY_MAX_BYTES must be a whole number of bytes")
  fi
  if [[ -n "$JOB_LEASE_SECONDS" ]]; then
    if ! is_seconds "$JOB_LEASE_SECONDS"; then
      problems+=("JOB_LEASE_SECONDS must be a number of seconds")
    elif [[ "$JOB_LEASE_SECONDS" =~ ^([0-9]+) ]] \
      && ((10#${BASH_REMATCH[1]} < INVOCATION_TIMEOUT_SECONDS + 60)); then
      problems+=("JOB_LEASE_SECONDS must be at least $((INVOCATION_TIMEOUT_SECONDS + 60)) (the timeout + 60 s)")
    fi
  fi
  if [[ "$BACKTEST_RESULTS_COLLECTION" == */* ]]; then
    problems+=("BACKTEST_RESULTS_COLLECTION must not contain '/'")
  fi
  if [[ -n "$BACKTEST_RESULTS_COLLECTION" \
    && "$BACKTEST_RESULTS_COLLECTION" == "${COLLECTION_SETTING:-$DEFAULT_COLLECTION}" ]]; then
    problems+=("BACKTEST_RESULTS_COLLECTION must differ from $COLLECTION_VARIABLE")
  fi
  if [[ "$RELEASE_RULES" == 1 ]] && ! command -v firebase >/dev/null 2>&1; then
    problems+=("--release-rules needs the Firebase CLI (firebase) on PATH")
  fi
}

profile_env_vars() {
  env_entry HISTORY_BUCKET "$HISTORY_BUCKET"
  env_entry HISTORY_PREFIX "$HISTORY_PREFIX"
  env_entry HISTORY_MAX_BYTES "$HISTORY_MAX_BYTES"
  env_entry JOB_LEASE_SECONDS "$JOB_LEASE_SECONDS"
  env_entry BACKTEST_RESULTS_COLLECTION "$BACKTEST_RESULTS_COLLECTION"
}

# No secret: the worker calls no paid API.
profile_secret() {
  SECRET_NAME=""
  SECRET_ENV=""
  SECRET_REF=""
}

# The runtime account's bindings beyond Firestore (deploy.sh plans datastore.user itself).
profile_plan_iam() {
  if [[ -n "$HISTORY_BUCKET" ]]; then
    plan_bucket_role "read the history CSVs in gs://$HISTORY_BUCKET (that bucket only, read only)" \
      "$HISTORY_BUCKET" storage.objectViewer
  fi
}

# The rules release, last and only on --release-rules: it replaces the whole ruleset.
profile_plan_after() {
  [[ "$RELEASE_RULES" == 1 ]] || return 0
  local rules_dir="$WORK_DIR/rules"
  mkdir -p "$rules_dir"
  cp "$REPO_ROOT/$RULES_FILE" "$rules_dir/$RULES_FILE"
  printf '{"firestore": [{"database": "%s", "rules": "%s"}]}\n' \
    "$FIRESTORE_DATABASE" "$RULES_FILE" >"$rules_dir/firebase.json"
  plan "release $RULES_FILE to database $FIRESTORE_DATABASE (REPLACES ITS WHOLE RULESET)" \
    firebase deploy --only firestore:rules "--project=$PROJECT" \
    "--config=$rules_dir/firebase.json" --non-interactive
}

profile_summary() {
  if [[ -n "$HISTORY_BUCKET" ]]; then
    echo "history:            gs://$HISTORY_BUCKET${HISTORY_PREFIX:+/$HISTORY_PREFIX}/daily/<SYMBOL>.csv (read only)"
  else
    echo "history:            none (HISTORY_BUCKET unset: history jobs fail HISTORY_UNAVAILABLE)"
  fi
  if [[ "$RELEASE_RULES" == 1 ]]; then
    echo "security rules:     $REPO_ROOT/$RULES_FILE RELEASED by this deploy, replacing the"
    echo "                    whole ruleset of database $FIRESTORE_DATABASE (--release-rules)"
  else
    echo "security rules:     not released. Merge $REPO_ROOT/$RULES_FILE into the app's rules"
    echo "                    (--release-rules releases it alone, replacing the whole ruleset)"
  fi
}

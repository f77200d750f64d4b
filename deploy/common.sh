# shellcheck shell=bash
# Helpers shared by deploy.sh and smoke.sh (sourced, never run). The caller sets SCRIPT_NAME,
# ASSUME_YES and the EXIT_* codes before using them.

EXIT_FAILED=1
EXIT_USAGE=2
EXIT_NOT_CONFIRMED=4
export EXIT_FAILED EXIT_USAGE EXIT_NOT_CONFIRMED

die() {
  local code="$1"
  shift
  printf '%s: error: %s\n' "$SCRIPT_NAME" "$*" >&2
  exit "$code"
}

# Quotes one word for display and for eval: plain words stay readable, anything else is put in
# single quotes. The printed plan is exactly what runs.
shell_word() {
  local word="$1"
  if [[ -n "$word" && "$word" =~ ^[A-Za-z0-9_@%+=:,./{}-]+$ ]]; then
    printf '%s' "$word"
  else
    printf "'%s'" "${word//\'/\'\\\'\'}"
  fi
}

command_line() {
  local out="" word
  for word in "$@"; do
    out+="${out:+ }$(shell_word "$word")"
  done
  printf '%s' "$out"
}

need_value() {
  [[ $# -ge 2 && -n "$2" ]] || die "$EXIT_USAGE" "flag $1 needs a value"
}

# Asks before acting unless --yes was given; with no terminal to ask on, it refuses. $1 says
# what did not happen ("changed", "done"). Returns 1 when not confirmed, after saying why.
ask_to_proceed() {
  local nothing="$1" answer
  [[ "$ASSUME_YES" -eq 1 ]] && return 0
  if [[ ! -t 0 ]]; then
    printf '%s: error: stdin is not a terminal and --yes was not given; nothing was %s.' \
      "$SCRIPT_NAME" "$nothing" >&2
    printf ' Re-run with --yes to run the plan above.\n' >&2
    return 1
  fi
  read -r -p "Proceed? [y/N] " answer || answer=""
  [[ "$answer" =~ ^([yY]|[yY][eE][sS])$ ]] && return 0
  printf '%s: error: not confirmed; nothing was %s\n' "$SCRIPT_NAME" "$nothing" >&2
  return 1
}

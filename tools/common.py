"""What every worker's command line shares: exit codes (COMMON.md §9) and the stale-work scan."""

from __future__ import annotations

import sys
from typing import Any


def recover_stale(worker: str, lease_seconds: float | None) -> int:
    """One stale-work scan over the configured services, as the scheduler's function runs it."""
    import json

    import compose
    from engine.config import ConfigError
    from engine.exits import ExitCode

    try:
        runner = compose.build(worker, stream=sys.stderr)
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    lease = lease_seconds or runner.config.common.lease_s
    print(json.dumps(runner.scan(lease)))
    return ExitCode.SUCCEEDED


def read_flow_run(path: object) -> tuple[dict[str, Any], str] | str:
    """The flow run in a JSON file and its runId, or why it cannot be used (a usage error)."""
    import json
    from pathlib import Path

    try:
        document = json.loads(Path(str(path)).read_text(encoding="utf-8"))
        run_id = document["runId"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return f"cannot read a flow run with a runId from {path}: {type(exc).__name__}"
    if not isinstance(run_id, str):
        return f"cannot read a flow run with a runId from {path}: runId is not a string"
    return document, run_id


def outcome_exit(status: str, reason: str | None, unit_id: str | None, step_status: Any) -> int:
    """COMMON.md §9 from an invocation's outcome and the step as it ended."""
    from engine.exits import ExitCode

    if status == "noop":
        return ExitCode.NOTHING
    if unit_id is None:
        return ExitCode.INVALID if reason == "FLOW_RUN_INVALID" else ExitCode.FAILED
    return ExitCode.SUCCEEDED if step_status == "SUCCEEDED" else ExitCode.FAILED

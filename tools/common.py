"""What every worker's command line shares: exit codes (COMMON.md §9) and the stale-work scan."""

from __future__ import annotations

import sys


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

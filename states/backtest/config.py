"""The backtest worker's configuration (BACKTEST §12), read and checked once per instance.

Errors name the variable, never its value (COMMON.md §6). `HISTORY_BUCKET` is optional: only
`history` jobs need it, and they fail `HISTORY_UNAVAILABLE` without it, while inline jobs run.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from engine.config import Common, ConfigError, Env

INVOCATION_TIMEOUT_S = 540.0
FINALIZE_BUDGET_S = 60.0
# JOB_LEASE_SECONDS defaults to the invocation timeout + 360 s: 900 s at the default timeout
# (§12), and still valid (>= timeout + 60 s) when only the timeout is raised.
LEASE_DEFAULT_MARGIN_S = 360.0
HISTORY_MAX_BYTES = 4_194_304
# A CSV of daily closes over a century is ~1 MB: 64 MiB bounds what one invocation may hold in
# memory whatever an operator sets.
HISTORY_MAX_BYTES_CEILING = 64 * 1024 * 1024
HISTORY_MAX_BYTES_FLOOR = len(b"date,close\n")


@dataclass(frozen=True)
class BacktestConfig:
    common: Common
    jobs_collection: str = "backtestJobs"
    results_collection: str = "backtestResults"
    history_bucket: str | None = None
    history_prefix: str = ""
    history_max_bytes: int = HISTORY_MAX_BYTES

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> BacktestConfig:
        env = Env(environ)
        common = Common.read(
            env,
            invocation_timeout_s=INVOCATION_TIMEOUT_S,
            finalize_budget_s=FINALIZE_BUDGET_S,
            lease_variable="JOB_LEASE_SECONDS",
            lease_default_margin_s=LEASE_DEFAULT_MARGIN_S,
        )
        jobs = env.collection("BACKTEST_JOBS_COLLECTION", "backtestJobs")
        results = env.collection("BACKTEST_RESULTS_COLLECTION", "backtestResults")
        if results == jobs:
            # A result created at the job's own path would "exist" with the job's jobId and
            # userId: reused, the job would complete with no result at all.
            raise ConfigError(
                "BACKTEST_RESULTS_COLLECTION", "must differ from BACKTEST_JOBS_COLLECTION"
            )
        return cls(
            common=common,
            jobs_collection=jobs,
            results_collection=results,
            history_bucket=env.bucket("HISTORY_BUCKET", required=False),
            history_prefix=env.prefix("HISTORY_PREFIX"),
            history_max_bytes=env.integer(
                "HISTORY_MAX_BYTES",
                HISTORY_MAX_BYTES,
                minimum=HISTORY_MAX_BYTES_FLOOR,
                maximum=HISTORY_MAX_BYTES_CEILING,
            ),
        )

"""The exit codes every worker's command line uses (COMMON.md §9)."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    SUCCEEDED = 0
    FAILED = 1
    USAGE = 2  # usage or configuration error
    NOTHING = 3  # nothing to execute: a no-op or an ignored event
    INVALID = 4  # the input document is invalid

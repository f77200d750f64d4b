"""What each state of a job hands to the next, once, typed.

Each record wraps the one before it: the result write sees the prices and the validated job it
came from, and nothing downstream hopes a field was set. A job met RUNNING (recovery) enters at
the probe with no record at all: none of its earlier phases happened in this invocation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from engine.ports import JsonObject
from engine.unit import Claim
from states.backtest.validation import ValidJob


@dataclass(frozen=True)
class Owned:
    """The job, validated and claimed by this invocation."""

    job: ValidJob
    claim: Claim


@dataclass(frozen=True)
class Priced:
    """The resolved price path (§6): closes and their dates, one per point."""

    owned: Owned
    prices: tuple[float, ...]
    dates: tuple[str, ...]
    source: Literal["inline", "history"]


@dataclass(frozen=True)
class Simulated:
    """The engine's `backtestResult`, with its canonical size and hash (§7.1, §9.7)."""

    priced: Priced
    result: dict[str, Any]
    canonical_bytes: int
    sha256: str


@dataclass(frozen=True)
class Found:
    """A `backtestResults/{jobId}` document already there, found by the probe or by a create
    that met AlreadyExists (perhaps our own earlier try): whose it is, reuse decides from its
    content, never from how it was found."""

    data: JsonObject
    after_create: bool


@dataclass(frozen=True)
class Stored:
    """The result the job completes with: created now, or an earlier one reused (§7.3)."""

    sha256: str | None
    outcome: Literal["created", "reused"]

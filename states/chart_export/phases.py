"""What each state of a CHART_EXPORT step hands to the next, once, typed.

From `templates` on, a step is a `Charts` record: the checked inputs and one `RequestResult` per
request, in `requests[]` order (never completion order, §9). Each state returns a new record
with the results it settled; the finalize reads whichever record the step reached, so a failure
anywhere still reports every request as far as it got.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Literal

from states.chart_export.chart_api import AttemptKind, ChartRequest

Outcome = Literal["rendered", "reused_object", "failed", "not_attempted"]


@dataclass(frozen=True)
class StepInputs:
    """§3's inputs, checked: the symbol, both spellings of the timeframe, the requests."""

    symbol: str
    timeframe: str  # the flow-run spelling: manifest and PNG names
    interval: str  # Chart-IMG's spelling: the body and `execution`
    token: str  # the fixture-name spelling (§5, §14)
    template_ids: tuple[str, ...]
    min_images: int


@dataclass(frozen=True)
class Checked:
    inputs: StepInputs


@dataclass(frozen=True)
class AttemptRecord:
    """One attempt as `execution` shows it: never a key, a body or anything derived from one."""

    account_id: str | None
    http_status: int | None
    kind: AttemptKind


@dataclass(frozen=True)
class RequestError:
    code: str
    message: str  # sanitized, ≤ 200 characters (manifest failures)
    reason: str | None = None  # only where §4, §6 or §7 names one
    http_status: int | None = None  # the last attempt's


@dataclass(frozen=True)
class RequestResult:
    template_id: str
    outcome: Outcome
    png_uri: str
    request: ChartRequest | None = None  # built once the template passed its checks
    kind: str | None = None  # the template's description: the manifest item's `kind`
    attempts: tuple[AttemptRecord, ...] = ()
    error: RequestError | None = None
    duration_ms: int | None = None
    generated_at: datetime | None = None
    png: bytes | None = field(default=None, repr=False)  # rendered, not yet stored

    @property
    def is_item(self) -> bool:
        return self.outcome in ("rendered", "reused_object")

    def failed(self, error: RequestError, duration_ms: int | None = None) -> RequestResult:
        return replace(
            self,
            outcome="failed",
            error=error,
            png=None,
            duration_ms=self.duration_ms if duration_ms is None else duration_ms,
        )


@dataclass(frozen=True)
class Charts:
    """The step's requests at some point of its run, with what the attempts used so far."""

    inputs: StepInputs
    results: tuple[RequestResult, ...]
    attempts_total: int = 0
    accounts_used: tuple[str, ...] = ()

    @property
    def items(self) -> tuple[RequestResult, ...]:
        return tuple(r for r in self.results if r.is_item)

    @property
    def failures(self) -> tuple[RequestResult, ...]:
        return tuple(r for r in self.results if r.outcome == "failed")

    @property
    def renderable(self) -> int:
        """Requests that are, or may still become, images."""
        return sum(r.outcome != "failed" for r in self.results)


@dataclass(frozen=True)
class Planned:
    """Every template checked and every renderable request built (§4, §5)."""

    charts: Charts


@dataclass(frozen=True)
class Rendered:
    """Every renderable request reused, rendered (PNG in memory) or failed (§6-§9)."""

    charts: Charts


@dataclass(frozen=True)
class Stored:
    """Every rendered PNG stored create-only, or its request failed GCS_WRITE_FAILED (§10)."""

    charts: Charts


@dataclass(frozen=True)
class Written:
    charts: Charts
    uri: str


@dataclass(frozen=True)
class Adopted:
    """A manifest an earlier execution wrote, found valid for this step (§12)."""

    uri: str
    min_images: int
    items: int
    failures: int


# --- guards (pure functions of the payload) ------------------------------------------------------


def renderable_enough(planned: Planned) -> bool:
    """Pre-flight (§4): enough requests can still become images to reach `minImages`."""
    return planned.charts.renderable >= planned.charts.inputs.min_images


def enough(stored: Stored) -> bool:
    """§11: SUCCEEDED iff itemsCount ≥ minImages."""
    return len(stored.charts.items) >= stored.charts.inputs.min_images

"""RUNNING.render: each renderable request reused or rendered, attempt by attempt (§6-§9).

Per request: its PNG is looked up first and reused when it exists (no reservation, no call).
Otherwise each attempt picks an account in the request's candidate order, reserves it (only a
committed reservation lets a request go out), waits for the account's start slot, and sends;
the answer's kind decides what follows (§6). Requests of one step run concurrently, at most
`CHART_RENDER_CONCURRENCY` in flight; their results are kept by request index (§9).

Bounds: a request makes at most `CHART_IMG_MAX_ATTEMPTS_PER_REQUEST` attempts besides
`limit_exceeded` ones (those are bounded by the accounts: an exhausted account is never tried
again that day); the step at most `CHART_IMG_MAX_ATTEMPTS_PER_STEP`, where a first attempt is
never refused and a retry starts only while `attempts started + requests not yet started` stays
below it; and no reservation is made unless the time left before the finalize budget covers the
pending delay plus `min(10 s, CHART_IMG_TIMEOUT_SECONDS)` (§8).
"""

from __future__ import annotations

import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace

from engine.clock import elapsed_ms
from engine.errors import StoreUnavailable
from engine.lifecycle import Next
from states.chart_export.accounts import candidates, start_index
from states.chart_export.chart_api import Account, ChartAttempt, fixture_stem
from states.chart_export.errors import ErrorCode
from states.chart_export.phases import (
    AttemptRecord,
    Charts,
    Planned,
    Rendered,
    RequestError,
    RequestResult,
)
from states.chart_export.unit import ChartUnit, step_id
from states.chart_export.usage import AtLimit, Contended, Reserved

FIRST_ATTEMPT_FLOOR_S = 10.0  # §8: min(10 s, CHART_IMG_TIMEOUT_SECONDS) must be left
RETRIED = frozenset({"rate_limited", "server_error", "network_error", "timeout"})
ACCOUNT_PROBLEM_STATUSES = frozenset({401, 403})


@dataclass
class StepRun:
    """What the step's concurrent requests share in this invocation (under one lock)."""

    bound: int
    not_started: int
    attempts_started: int = 0
    accounts_used: list[str] = field(default_factory=list)
    banned: set[str] = field(default_factory=set)  # Retry-After above the maximum
    all_exhausted_logged: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def admit(self, first: bool) -> bool:
        """Counts an attempt about to start; a retry only while the step bound allows it."""
        with self.lock:
            if first:
                self.not_started -= 1
            elif self.attempts_started + self.not_started >= self.bound:
                return False
            self.attempts_started += 1
            return True

    def withdraw(self, first: bool) -> None:
        """An admitted attempt that never started (no account could be reserved)."""
        with self.lock:
            self.attempts_started -= 1
            if first:
                self.not_started += 1

    def never_starts(self) -> None:
        with self.lock:
            self.not_started -= 1

    def used(self, account_id: str) -> None:
        with self.lock:
            if account_id not in self.accounts_used:
                self.accounts_used.append(account_id)

    def first_all_exhausted(self) -> bool:
        with self.lock:
            first, self.all_exhausted_logged = not self.all_exhausted_logged, True
            return first


@dataclass
class Progress:
    """One request's attempts so far, and what the next one must wait for."""

    attempts: list[AttemptRecord] = field(default_factory=list)
    counted: int = 0  # attempts towards the per-request bound (not limit_exceeded)
    failures: int = 0  # server errors, network errors and timeouts so far (the backoff's j)
    backoff_s: float = 0.0
    provider_limited: bool = False
    last: RequestError | None = None


def enter(unit: ChartUnit, planned: Planned) -> Next:
    charts = planned.charts
    todo = [i for i, r in enumerate(charts.results) if r.request is not None]
    run = StepRun(bound=unit.config.max_attempts_per_step, not_started=len(todo))
    results = list(charts.results)
    if todo:
        workers = min(unit.config.render_concurrency, len(todo))
        with ThreadPoolExecutor(workers, thread_name_prefix="chart-render") as pool:
            futures = {i: pool.submit(render_one, unit, run, results[i]) for i in todo}
            for index, future in futures.items():
                results[index] = future.result()
    return "rendered", Rendered(
        Charts(
            charts.inputs,
            tuple(results),
            attempts_total=sum(len(r.attempts) for r in results),
            accounts_used=tuple(run.accounts_used),
        )
    )


def render_one(unit: ChartUnit, run: StepRun, result: RequestResult) -> RequestResult:
    started = time.monotonic()
    reused = lookup(unit, result)
    if reused is not None:
        run.never_starts()
        finished(unit, reused)
        return replace(reused, duration_ms=elapsed_ms(started))
    progress = Progress()
    outcome = attempts(unit, run, result, progress)
    if outcome is None:
        error = progress.last or RequestError(
            ErrorCode.TIME_BUDGET_EXCEEDED, "not enough invocation time left for an attempt"
        )
        outcome = result.failed(error)
    outcome = replace(outcome, attempts=tuple(progress.attempts), duration_ms=elapsed_ms(started))
    finished(unit, outcome)
    return outcome


def lookup(unit: ChartUnit, result: RequestResult) -> RequestResult | None:
    """§10: an existing PNG is reused (its creation time is `generatedAt`); a failed lookup
    counts as absent."""
    try:
        created = unit.ports.blobs.created(result.png_uri)
    except Exception as exc:  # a lookup failure is never fatal: the worst case is a re-render
        unit.log.warning(
            "chart_png_lookup_failed",
            chartTemplateId=result.template_id,
            exceptionType=type(exc).__name__,
        )
        return None
    if created is None:
        return None
    unit.log.info("chart_png_reused", chartTemplateId=result.template_id, gcsUri=result.png_uri)
    return replace(result, outcome="reused_object", generated_at=created)


def attempts(
    unit: ChartUnit, run: StepRun, result: RequestResult, progress: Progress
) -> RequestResult | None:
    """Attempts until one ends the request; None when it ends without an answer of its own
    (bounds, time, no account): the caller fails it with `progress.last`."""
    config = unit.config
    request = result.request
    assert request is not None
    accounts = config.accounts
    start = start_index(unit.doc_id, step_id(unit), result.template_id, len(accounts) or 1)
    rotation = 0
    while progress.counted < config.max_attempts_per_request:
        first = not progress.attempts
        if not run.admit(first):
            return None
        account: Account | None = None
        if unit.ports.needs_account(request):
            account = reserve(unit, run, result, progress, start, rotation)
            if account is None:
                run.withdraw(first)
                return None
            run.used(account.id)
        elif not wait(unit, result, progress, None, 0.0):  # no account, no spacing (mock)
            run.withdraw(first)
            return None
        attempt = call(unit, result, progress, account)
        rotation += 1
        ended = after(unit, run, result, progress, account, attempt)
        if ended is not None:
            return ended
    return None


def wait(
    unit: ChartUnit,
    result: RequestResult,
    progress: Progress,
    account_id: str | None,
    slot_s: float,
) -> bool:
    """Waits what the next attempt on the account must wait — the backoff, its cool-down, its
    start slot — after checking the time left before the finalize budget covers that and an
    attempt (§8); False (nothing waited) when it does not."""
    book = unit.ports.book
    delay = max(progress.backoff_s, book.cooling(account_id))
    pending = max(delay, slot_s)
    floor = min(FIRST_ATTEMPT_FLOOR_S, unit.config.timeout_s)
    if unit.budget.spendable() < pending + floor:
        if not progress.attempts:
            progress.last = RequestError(
                ErrorCode.TIME_BUDGET_EXCEEDED, "not enough invocation time left for an attempt"
            )
        return False
    if delay > 0:
        reason = "cool_down" if book.cooling(account_id) >= progress.backoff_s else "backoff"
        unit.log.info(
            "chart_api_backoff",
            chartTemplateId=result.template_id,
            delaySeconds=round(delay, 3),
            reason=reason,
            accountId=account_id,
        )
    if pending > 0:
        unit.ports.sleep(pending)
    progress.backoff_s = 0.0
    return True


def reserve(
    unit: ChartUnit,
    run: StepRun,
    result: RequestResult,
    progress: Progress,
    start: int,
    rotation: int,
) -> Account | None:
    """§7: the first candidate whose reservation commits, or None with `progress.last` saying
    why no account could be reserved (or the time budget refused the wait).

    Candidates are tried in the request's rotated order, cool-down last; among those not cooling,
    the one whose next start slot comes first is taken (§9 spacing), so concurrent requests of a
    step spread over free accounts instead of queueing behind one."""
    book = unit.ports.book
    now = unit.now()
    accounts = unit.config.accounts
    exhausted_ids = {a.id for a in accounts if book.exhausted(a.id, now)}
    rate_limited = bool(run.banned - exhausted_ids)  # out for this invocation, not the day
    skipped = run.banned | exhausted_ids
    cooling = {a.id for a in accounts if book.cooling(a.id) > 0}
    order = candidates(accounts, start, rotation, skipped, cooling)
    by_id = {a.id: a for a in order}
    contended = unavailable = False
    usage = unit.ports.usage
    spacing_s = 1.0 / unit.config.requests_per_second
    while order:
        warm = [a.id for a in order if a.id not in cooling]
        chosen, slot_s = book.claim(warm or [a.id for a in order], spacing_s)
        account = by_id[chosen]
        order = [a for a in order if a.id != chosen]
        if not wait(unit, result, progress, account.id, slot_s):
            return None
        if usage is None:
            return account  # nothing to count: an unmetered account (never in real mode)
        try:
            outcome = usage.reserve(account.id, account.daily_limit, unit.now())
        except StoreUnavailable as exc:
            unit.log.error(
                "chart_img_reservation_failed", accountId=account.id, reason=type(exc).__name__
            )
            unavailable = True
            continue
        if isinstance(outcome, Reserved):
            unit.log.info(
                "chart_img_account_reserved",
                accountId=account.id,
                usageToday=outcome.usage_today,
                dailyLimit=outcome.daily_limit,
            )
            return account
        if isinstance(outcome, AtLimit):
            book.exhaust(account.id, unit.now())
            unit.log.warning("chart_img_account_exhausted", accountId=account.id, source="counter")
        elif isinstance(outcome, Contended):
            unit.log.warning("chart_img_reservation_conflict", accountId=account.id)
            contended = True
    if unavailable:
        progress.last = RequestError(
            ErrorCode.FIRESTORE_UNAVAILABLE, "usage counters could not be read or written"
        )
    elif rate_limited and progress.last is not None:
        pass  # an account asked for a longer pause than allowed: the last answer stands
    elif contended:
        progress.last = RequestError(
            ErrorCode.CHART_API_FAILED,
            "no reservation: every usable account was contended",
            reason="reservation_contention",
        )
    else:
        provider = progress.provider_limited
        progress.last = RequestError(
            ErrorCode.CHART_API_LIMIT_EXCEEDED,
            "every account tried answered Limit Exceeded"
            if provider
            else "no Chart-IMG account has quota left today",
            reason="provider" if provider else "no_account",
            http_status=429 if provider else None,
        )
        if run.first_all_exhausted():
            unit.log.error(
                "chart_img_accounts_all_exhausted",
                accountIds=[a.id for a in accounts],
                error={"code": ErrorCode.CHART_API_LIMIT_EXCEEDED},
            )
    return None


def call(
    unit: ChartUnit, result: RequestResult, progress: Progress, account: Account | None
) -> ChartAttempt:
    request = result.request
    assert request is not None
    account_id = account.id if account else None
    unit.log.info(
        "chart_api_attempt_started",
        chartTemplateId=result.template_id,
        attempt=len(progress.attempts) + 1,
        accountId=account_id,
        mode=unit.config.mode,
    )
    timeout = unit.budget.cap(unit.config.timeout_s)
    attempt = unit.ports.chart_api.render(request, account, timeout)
    progress.attempts.append(AttemptRecord(account_id, attempt.http_status, attempt.kind))
    unit.log.info(
        "chart_api_attempt_finished",
        chartTemplateId=result.template_id,
        accountId=account_id,
        httpStatus=attempt.http_status,
        kind=attempt.kind,
        reason=attempt.reason,
        durationMs=attempt.duration_ms,
        bytes=attempt.bytes,
        retryAfterSeconds=attempt.retry_after_s,
    )
    for fixture in unit.ports.recorded():
        unit.log.info("chart_api_fixture_recorded", fixture=fixture)
    return attempt


def after(
    unit: ChartUnit,
    run: StepRun,
    result: RequestResult,
    progress: Progress,
    account: Account | None,
    attempt: ChartAttempt,
) -> RequestResult | None:
    """What an answer means (§6): the request's end, or None to try again."""
    kind = attempt.kind
    status = attempt.http_status
    message = attempt.provider_message
    if kind == "ok":
        assert attempt.png is not None
        return replace(result, outcome="rendered", png=attempt.png, generated_at=unit.now())
    if kind == "invalid_image":
        return result.failed(
            RequestError(
                ErrorCode.CHART_API_REJECTED,
                f"chart-img answered 200 with an unacceptable image ({attempt.reason})",
                reason=attempt.reason,
                http_status=status,
            )
        )
    if kind == "rejected":
        if status in ACCOUNT_PROBLEM_STATUSES and account is not None:
            unit.log.error("chart_img_account_problem", accountId=account.id, httpStatus=status)
        return result.failed(
            RequestError(
                ErrorCode.CHART_API_REJECTED,
                message or f"chart-img rejected the request (http {status})",
                http_status=status,
            )
        )
    if kind == "fixture_missing":
        request = result.request
        assert request is not None
        unit.log.warning(
            "chart_api_mock_missing", chartTemplateId=result.template_id, stem=fixture_stem(request)
        )
        return result.failed(
            RequestError(ErrorCode.CHART_API_MOCK_MISSING, "no fixture for this request")
        )
    if kind == "limit_exceeded":
        progress.provider_limited = True
        progress.last = RequestError(
            ErrorCode.CHART_API_LIMIT_EXCEEDED,
            message or "Limit Exceeded",
            reason="provider",
            http_status=status,
        )
        if account is None:  # a replayed answer: there is no other account to move to
            return result.failed(progress.last)
        exhausted(unit, account)
        return None
    # rate_limited, server_error, network_error, timeout: retried (§8)
    progress.counted += 1
    progress.last = RequestError(
        ErrorCode.CHART_API_FAILED,
        message or describe(kind, status),
        http_status=status,
    )
    key = account.id if account else None
    if attempt.retry_after_s is not None:
        if attempt.retry_after_s > unit.config.retry_after_max_s and key is not None:
            run.banned.add(key)  # not used again in this invocation
        else:
            unit.ports.book.cool(key, min(attempt.retry_after_s, unit.config.retry_after_max_s))
    if kind == "rate_limited":
        if attempt.retry_after_s is None:
            # No Retry-After: the account cools down as long as a backoff would last.
            progress.failures += 1
            unit.ports.book.cool(key, backoff(unit, progress.failures))
        return None
    progress.failures += 1
    progress.backoff_s = backoff(unit, progress.failures)
    return None


def exhausted(unit: ChartUnit, account: Account) -> None:
    """§7: after `Limit Exceeded` the account is exhausted for the UTC day in this instance,
    whether or not the usage document can record it."""
    unit.ports.book.exhaust(account.id, unit.now())
    unit.log.warning("chart_img_account_exhausted", accountId=account.id, source="provider")
    usage = unit.ports.usage
    if usage is None:
        return
    try:
        written = usage.mark_exhausted(account.id, account.daily_limit, unit.now())
    except StoreUnavailable as exc:
        unit.log.error(
            "chart_img_exhaustion_not_recorded", accountId=account.id, reason=type(exc).__name__
        )
        return
    if not written:
        unit.log.error(
            "chart_img_exhaustion_not_recorded", accountId=account.id, reason="contended"
        )


def backoff(unit: ChartUnit, failures: int) -> float:
    """§8: `uniform(0.5, 1) * min(max, base * 2^(j-1))`."""
    config = unit.config
    ceiling = min(config.backoff_max_s, config.backoff_base_s * 2.0 ** (failures - 1))
    return random.uniform(0.5, 1.0) * ceiling


def describe(kind: str, status: int | None) -> str:
    if kind == "timeout":
        return "chart-img attempt timed out"
    if kind == "network_error":
        return "chart-img could not be reached"
    if kind == "rate_limited":
        return "chart-img answered Too Many Requests"
    return f"chart-img answered a server error (http {status})"


def finished(unit: ChartUnit, result: RequestResult) -> None:
    unit.log.info(
        "chart_request_finished",
        chartTemplateId=result.template_id,
        outcome=result.outcome,
        errorCode=result.error.code if result.error else None,
        attempts=len(result.attempts),
    )

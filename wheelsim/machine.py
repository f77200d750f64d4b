"""The Wheel as a state machine over price points (BACKTEST §9.2).

At each index exactly one of settlement (A) or opening (B) happens, then equity is marked (C).
The trace keeps cash and shares per index as well as equity, so that the accounting identity
`equity = cash + shares * price` can be checked from outside without re-running the rules.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from wheelsim.config import CALL_STRIKE_FACTOR, CONTRACT_SIZE, DTE, SimConfig
from wheelsim.errors import EngineError
from wheelsim.pricing import call_value, put_value, round_cents

State = Literal["idle", "shortPut", "shares", "shortCall"]
Outcome = Literal["expiredOTM", "calledAway"]


@dataclass(frozen=True)
class Option:
    """The one short option the Wheel can hold; its kind follows from the state."""

    strike: float
    expiry: int
    contracts: int


@dataclass
class OpenCycle:
    """A cycle between its put sale and its end; premiums and the assignment accrue here."""

    start_index: int
    start_equity: float
    contracts: int
    premium_collected: float
    assignment_price: float | None = None
    assignment_strike: float | None = None


@dataclass(frozen=True)
class Cycle:
    """A completed cycle (`cycles` in the result); an open one at the end is never listed."""

    index: int
    start_index: int
    end_index: int
    start_equity: float
    end_equity: float
    contracts: int
    premium_collected: float
    outcome: Outcome
    assignment_price: float | None
    assignment_strike: float | None
    called_away_price: float | None
    called_away_strike: float | None

    @property
    def had_assignment(self) -> bool:
        return self.assignment_strike is not None


@dataclass(frozen=True)
class Trace:
    """Everything the run produced, index-aligned with the price path, before any rounding."""

    equity: list[float]
    cash: list[float]
    shares: list[int]
    cycles: list[Cycle]
    notes: list[str]
    state: State
    option: Option | None


class _Wheel:
    """Mutable run state; each method is one transition of §9.2 and writes its own note."""

    def __init__(self, starting_capital: float, max_cycles: int) -> None:
        self.cash = starting_capital
        self.shares = 0
        self.state: State = "idle"
        self.option: Option | None = None
        self.cycle: OpenCycle | None = None
        self.cycles: list[Cycle] = []
        self.notes: list[str] = []
        self.max_cycles = max_cycles
        # "insufficient cash" is noted once per idle stretch, not at every idle point.
        self.short_of_cash_noted = False

    def step(self, i: int, s: float) -> float:
        """Apply A or B at index i, then return the equity mark C."""
        if self.option is not None and i == self.option.expiry:
            if self.state == "shortPut":
                self._settle_put(i, s, self.option)
            else:
                self._settle_call(i, s, self.option)
        elif self.state == "idle" and len(self.cycles) < self.max_cycles:
            self._open_put(i, s)
        elif self.state == "shares":
            self._open_call(i, s)
        equity = self.cash + self.shares * s
        if not math.isfinite(equity):
            raise EngineError("engine: equity is not a finite number")
        return equity

    def _settle_put(self, i: int, s: float, put: Option) -> None:
        self.option = None
        k = put.strike
        if s < k:
            q = CONTRACT_SIZE * put.contracts
            self.cash = self.cash - k * q
            self.shares = q
            cycle = self._open_cycle()
            cycle.assignment_price = s
            cycle.assignment_strike = k
            self.state = "shares"
            self.notes.append(f"{i}: put assigned K={k:.2f} S={s:.2f} shares={q}")
        else:
            # Equality is out of the money: the put holder would not sell at the market price.
            self.state = "idle"
            self.notes.append(f"{i}: put expired OTM K={k:.2f} S={s:.2f}")
            self._end_cycle(i, "expiredOTM", None, None)

    def _settle_call(self, i: int, s: float, call: Option) -> None:
        self.option = None
        k = call.strike
        if s > k:
            q = self.shares
            self.cash = self.cash + k * q
            self.shares = 0
            self.state = "idle"
            self.notes.append(f"{i}: called away K={k:.2f} S={s:.2f} shares={q}")
            self._end_cycle(i, "calledAway", s, k)
        else:
            self.state = "shares"
            self.notes.append(f"{i}: call expired OTM K={k:.2f} S={s:.2f}")

    def _open_put(self, i: int, s: float) -> None:
        k = round_cents(s)
        n = math.floor(self.cash / (k * 100.0))
        if n < 1:
            # Selling a put the cash cannot secure would let cash go negative on assignment.
            if not self.short_of_cash_noted:
                self.notes.append(f"{i}: insufficient cash for 1 put at K={k:.2f}")
                self.short_of_cash_noted = True
            return
        premium = _finite_premium(put_value(s, k) * (CONTRACT_SIZE * n))
        self.cycle = OpenCycle(
            start_index=i, start_equity=self.cash, contracts=n, premium_collected=premium
        )
        self.cash = self.cash + premium
        self.state = "shortPut"
        self.option = Option(strike=k, expiry=i + DTE, contracts=n)
        self.short_of_cash_noted = False
        self.notes.append(f"{i}: sell put x{n} K={k:.2f} premium={premium:.2f}")

    def _open_call(self, i: int, s: float) -> None:
        k = round_cents(s * CALL_STRIKE_FACTOR)
        premium = _finite_premium(call_value(s, k) * self.shares)
        cycle = self._open_cycle()
        self.cash = self.cash + premium
        cycle.premium_collected = cycle.premium_collected + premium
        self.state = "shortCall"
        n = self.shares // CONTRACT_SIZE
        self.option = Option(strike=k, expiry=i + DTE, contracts=n)
        self.notes.append(f"{i}: sell call x{n} K={k:.2f} premium={premium:.2f}")

    def _end_cycle(
        self,
        i: int,
        outcome: Outcome,
        called_away_price: float | None,
        called_away_strike: float | None,
    ) -> None:
        cycle = self._open_cycle()
        self.cycles.append(
            Cycle(
                index=len(self.cycles),
                start_index=cycle.start_index,
                end_index=i,
                start_equity=cycle.start_equity,
                end_equity=self.cash,
                contracts=cycle.contracts,
                premium_collected=cycle.premium_collected,
                outcome=outcome,
                assignment_price=cycle.assignment_price,
                assignment_strike=cycle.assignment_strike,
                called_away_price=called_away_price,
                called_away_strike=called_away_strike,
            )
        )
        self.cycle = None
        if len(self.cycles) == self.max_cycles:
            self.notes.append(f"{i}: maxCycles reached ({self.max_cycles})")

    def _open_cycle(self) -> OpenCycle:
        """The cycle every option belongs to; a missing one is a broken invariant, not input."""
        if self.cycle is None:
            raise AssertionError("an option is settled or sold outside a cycle")
        return self.cycle


def _finite_premium(premium: float) -> float:
    if not math.isfinite(premium):
        raise EngineError("engine: premium is not a finite number")
    return premium


def simulate_trace(config: SimConfig, prices: Sequence[float]) -> Trace:
    """Run the Wheel over `prices`; `simulate` turns this into the stored result."""
    wheel = _Wheel(config.starting_capital, config.max_cycles)
    equity: list[float] = []
    cash: list[float] = []
    shares: list[int] = []
    for i, s in enumerate(prices):
        equity.append(wheel.step(i, s))
        cash.append(wheel.cash)
        shares.append(wheel.shares)
    last = len(prices) - 1
    wheel.notes.append(
        f"{last}: end state={wheel.state} cash={wheel.cash:.2f} shares={wheel.shares}"
    )
    return Trace(
        equity=equity,
        cash=cash,
        shares=shares,
        cycles=wheel.cycles,
        notes=wheel.notes,
        state=wheel.state,
        option=wheel.option,
    )

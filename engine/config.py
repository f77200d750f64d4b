"""Configuration from the environment, validated once per instance (COMMON.md §5, §6).

Errors name the variable, never its value: a misplaced secret must not reach the logs through a
validation message. Each worker reads its own variables with `Env`; the ones every worker shares
(timeouts, the lease, logging) are read by `Common.read`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from engine.names import object_name_problem

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
N = TypeVar("N", int, float)
LEASE_MARGIN_S = 60.0  # COMMON.md §5: a lease outlasts the invocation timeout by at least this


class ConfigError(Exception):
    """A configuration variable is missing or malformed; the message names only the variable."""

    def __init__(self, variable: str, rule: str) -> None:
        super().__init__(f"{variable} {rule}")
        self.variable = variable


class Env:
    """Typed reads of environment variables; every failure is a ConfigError naming the
    variable. Blank values count as unset."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ

    def text(self, name: str, default: str | None = None) -> str | None:
        value = self.environ.get(name, "").strip()
        return value or default

    def required(self, name: str) -> str:
        value = self.text(name)
        if value is None:
            raise ConfigError(name, "is required")
        return value

    def number(
        self,
        name: str,
        default: float,
        *,
        minimum: float | None = None,
        maximum: float | None = None,
        positive: bool = False,
    ) -> float:
        value = self._parsed(name, float, "a number")
        if value is None:
            return default
        if math.isinf(value) or math.isnan(value):
            raise ConfigError(name, "must be a finite number")
        if positive and value <= 0:
            raise ConfigError(name, "must be positive")
        return _within(name, value, minimum, maximum)

    def integer(
        self, name: str, default: int, *, minimum: int | None = None, maximum: int | None = None
    ) -> int:
        value = self._parsed(name, int, "a whole number")
        return default if value is None else _within(name, value, minimum, maximum)

    def seconds(self, name: str, default: float) -> float:
        return self.number(name, default, positive=True)

    def _parsed(self, name: str, kind: Callable[[str], N], what: str) -> N | None:
        raw = self.text(name)
        if raw is None:
            return None
        try:
            return kind(raw)
        except ValueError:
            raise ConfigError(name, f"must be {what}") from None

    def collection(self, name: str, default: str) -> str:
        value = self.text(name, default) or default
        if "/" in value:
            raise ConfigError(name, "must not contain '/'")
        return value

    def choice(
        self, name: str, default: str, choices: tuple[str, ...], *, upper: bool = False
    ) -> str:
        value = self.text(name, default) or default
        if upper:
            value = value.upper()
        if value not in choices:
            raise ConfigError(name, f"must be one of {', '.join(choices)}")
        return value

    def bucket(self, name: str, *, required: bool = True) -> str | None:
        raw = self.required(name) if required else self.text(name)
        if raw is None:
            return None
        bucket = raw.removeprefix("gs://").strip("/")
        if not bucket or "/" in bucket:
            raise ConfigError(name, "must be a bucket name")
        return bucket

    def prefix(self, name: str) -> str:
        """An object name prefix: no '.'/'..' segment, no control character."""
        prefix = self.text(name, "") or ""
        if prefix.strip("/") and object_name_problem(prefix.strip("/")) is not None:
            raise ConfigError(name, "must be a safe object name prefix")
        return prefix

    def json(self, name: str) -> Any:
        raw = self.text(name)
        if raw is None:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            raise ConfigError(name, "must be JSON") from None


def _within(name: str, value: N, minimum: N | None, maximum: N | None) -> N:
    if minimum is not None and value < minimum:
        raise ConfigError(name, f"must be at least {minimum:g}")
    if maximum is not None and value > maximum:
        raise ConfigError(name, f"must be at most {maximum:g}")
    return value


@dataclass(frozen=True)
class Common:
    """What every worker reads: the project, the database, logging, and the time rules."""

    gcp_project: str | None
    firestore_database: str
    env: str
    log_level: str
    invocation_timeout_s: float
    finalize_budget_s: float
    lease_s: float

    @classmethod
    def read(
        cls,
        env: Env,
        *,
        invocation_timeout_s: float,
        finalize_budget_s: float,
        lease_variable: str,
        lease_default_margin_s: float,
    ) -> Common:
        log_level = env.choice("LOG_LEVEL", "INFO", LOG_LEVELS, upper=True)
        finalize_budget = env.seconds("FINALIZE_BUDGET_SECONDS", finalize_budget_s)
        invocation_timeout = env.seconds("INVOCATION_TIMEOUT_SECONDS", invocation_timeout_s)
        if finalize_budget >= invocation_timeout:
            raise ConfigError(
                "FINALIZE_BUDGET_SECONDS", "must be smaller than INVOCATION_TIMEOUT_SECONDS"
            )
        # A unit outlives its invocation only if that invocation died: the lease must outlast
        # the invocation timeout by a margin, or live executions would be failed.
        lease = env.seconds(lease_variable, invocation_timeout + lease_default_margin_s)
        if lease < invocation_timeout + LEASE_MARGIN_S:
            raise ConfigError(
                lease_variable, "must exceed INVOCATION_TIMEOUT_SECONDS by a minute or more"
            )
        return cls(
            gcp_project=env.text("GCP_PROJECT") or env.text("GOOGLE_CLOUD_PROJECT"),
            firestore_database=env.text("FIRESTORE_DATABASE", "(default)") or "(default)",
            env=env.text("ENV", "dev") or "dev",
            log_level=log_level,
            invocation_timeout_s=invocation_timeout,
            finalize_budget_s=finalize_budget,
            lease_s=lease,
        )

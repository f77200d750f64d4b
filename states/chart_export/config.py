"""The CHART_EXPORT worker's configuration (CHART_EXPORT §16, §7, §14), read once per instance.

Errors name the variable (and, for the accounts secret, the index of the bad entry), never a
value: the secret holds API keys, and a misplaced key in any other variable must not reach the
logs through a validation message either. Keys are held where `repr` cannot print them.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from engine.config import Common, ConfigError, Env
from states.chart_export.chart_api import PLANS, Account, Plan
from states.flow_run.config import step_settings

INVOCATION_TIMEOUT_S = 540.0
FINALIZE_BUDGET_S = 60.0
LEASE_MARGIN_S = 120.0  # default STALE_STEP_LEASE_SECONDS = invocation timeout + 120 s
ACCOUNTS_VARIABLE = "CHART_IMG_ACCOUNTS_JSON"
MAX_ACCOUNTS = 50  # chart_img_accounts.schema.json
PACKAGE = Path(__file__).resolve().parent
SHIPPED_FIXTURES = PACKAGE / "fixtures"
SHIPPED_TEMPLATES = PACKAGE / "templates"
PRODUCTION_ENVS = frozenset({"prod", "production"})

Mode = Literal["real", "mock", "record"]


@dataclass(frozen=True)
class ChartConfig:
    common: Common
    artifacts_bucket: str
    mode: Mode
    plan: Plan
    accounts: tuple[Account, ...] = field(default=(), repr=False)
    gcp_region: str | None = None
    flow_runs_collection: str = "flow_runs"
    templates_collection: str = "chart_templates"
    usage_collection: str = "chart_img_accounts_usage"
    artifacts_prefix: str = ""
    fixtures_dir: Path = SHIPPED_FIXTURES
    timezone: str = "Etc/UTC"
    base_url: str = "https://api.chart-img.com"
    default_daily_limit: int = 44
    timeout_s: float = 40.0
    max_attempts_per_request: int = 3
    max_attempts_per_step: int = 12
    backoff_base_s: float = 1.0
    backoff_max_s: float = 20.0
    retry_after_max_s: float = 60.0
    requests_per_second: float = 1.0
    render_concurrency: int = 4
    max_png_bytes: int = 262_144
    # Keys found in a secret that mock mode does not use: never used, but still gated.
    ignored_keys: tuple[str, ...] = field(default=(), repr=False)

    @property
    def secrets(self) -> tuple[str, ...]:
        """Values the logger must never let through (its value gate): every account key."""
        return tuple(a.api_key for a in self.accounts) + self.ignored_keys

    @property
    def daily_max(self) -> int:
        return self.plan.daily_max

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> ChartConfig:
        env = Env(environ)
        bucket, common = step_settings(
            env,
            invocation_timeout_s=INVOCATION_TIMEOUT_S,
            finalize_budget_s=FINALIZE_BUDGET_S,
            lease_margin_s=LEASE_MARGIN_S,
        )
        mode: Mode = env.choice("CHARTS_API_MODE", "real", ("real", "mock", "record"))  # type: ignore[assignment]
        if mode == "record" and common.env.lower() in PRODUCTION_ENVS:
            raise ConfigError("CHARTS_API_MODE", "record is refused when ENV is prod or production")
        plan = PLANS[env.choice("CHART_IMG_PLAN", "BASIC", tuple(PLANS), upper=True)]
        backoff_base = env.number("CHART_IMG_BACKOFF_BASE_SECONDS", 1.0, minimum=0)
        backoff_max = env.number("CHART_IMG_BACKOFF_MAX_SECONDS", 20.0, minimum=0)
        if backoff_base > backoff_max:
            raise ConfigError(
                "CHART_IMG_BACKOFF_BASE_SECONDS", "must not exceed CHART_IMG_BACKOFF_MAX_SECONDS"
            )
        rps = env.number(
            "CHART_IMG_REQUESTS_PER_SECOND", float(plan.requests_per_second), positive=True
        )
        accounts: tuple[Account, ...] = ()
        ignored: tuple[str, ...] = ()
        if mode == "mock":
            ignored = stray_keys(env.text(ACCOUNTS_VARIABLE))
        else:
            accounts = parse_accounts(env.text(ACCOUNTS_VARIABLE))
        return cls(
            common=common,
            artifacts_bucket=bucket,
            mode=mode,
            plan=plan,
            accounts=accounts,
            gcp_region=env.text("GCP_REGION"),
            flow_runs_collection=env.collection("FLOW_RUNS_COLLECTION", "flow_runs"),
            templates_collection=env.collection("CHART_TEMPLATES_COLLECTION", "chart_templates"),
            usage_collection=env.collection(
                "CHART_IMG_USAGE_COLLECTION", "chart_img_accounts_usage"
            ),
            artifacts_prefix=env.prefix("ARTIFACTS_PREFIX"),
            fixtures_dir=fixtures_dir(env, mode),
            timezone=timezone(env),
            base_url=base_url(env, common.env),
            default_daily_limit=min(
                env.integer("CHART_IMG_DEFAULT_DAILY_LIMIT", 44, minimum=0), plan.daily_max
            ),
            timeout_s=env.number("CHART_IMG_TIMEOUT_SECONDS", 40.0, minimum=1, maximum=120),
            max_attempts_per_request=env.integer(
                "CHART_IMG_MAX_ATTEMPTS_PER_REQUEST", 3, minimum=1, maximum=5
            ),
            max_attempts_per_step=env.integer(
                "CHART_IMG_MAX_ATTEMPTS_PER_STEP", 12, minimum=1, maximum=50
            ),
            backoff_base_s=backoff_base,
            backoff_max_s=backoff_max,
            retry_after_max_s=env.number("CHART_IMG_RETRY_AFTER_MAX_SECONDS", 60.0, minimum=0),
            requests_per_second=min(rps, float(plan.requests_per_second)),
            render_concurrency=env.integer("CHART_RENDER_CONCURRENCY", 4, minimum=1, maximum=4),
            max_png_bytes=env.integer(
                "CHART_IMG_MAX_PNG_BYTES", 262_144, minimum=1024, maximum=262_144
            ),
            ignored_keys=ignored,
        )


def parse_accounts(raw: str | None) -> tuple[Account, ...]:
    """`[{id, apiKey, dailyLimit?}]` (chart_img_accounts.schema.json, ids unique). Every error
    names the variable and the entry's index, never a value: the text is a secret."""
    name = ACCOUNTS_VARIABLE
    if raw is None:
        raise ConfigError(name, "is required in real and record modes")
    try:
        import json

        data: Any = json.loads(raw)
    except ValueError:
        raise ConfigError(name, "must be JSON") from None
    if not isinstance(data, list) or not 1 <= len(data) <= MAX_ACCOUNTS:
        raise ConfigError(name, f"must be an array of 1 to {MAX_ACCOUNTS} accounts")
    accounts: list[Account] = []
    for index, entry in enumerate(data):
        where = f"{name}[{index}]"
        if not isinstance(entry, dict):
            raise ConfigError(where, "must be an object")
        if set(entry) - {"id", "apiKey", "dailyLimit"}:
            raise ConfigError(where, "may only hold id, apiKey and dailyLimit")
        account_id = entry.get("id")
        if not isinstance(account_id, str) or not _account_id_ok(account_id):
            raise ConfigError(f"{where}.id", "must match ^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
        if account_id in {a.id for a in accounts}:
            raise ConfigError(f"{where}.id", "repeats an earlier account id")
        key = entry.get("apiKey")
        if not isinstance(key, str) or not key or any(ch.isspace() for ch in key):
            raise ConfigError(f"{where}.apiKey", "must be a non-empty string without whitespace")
        limit = entry.get("dailyLimit")
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)):
            raise ConfigError(f"{where}.dailyLimit", "must be an integer")
        if limit is not None and limit < 1:
            raise ConfigError(f"{where}.dailyLimit", "must be at least 1")
        accounts.append(Account(account_id, key, limit))
    keys = [a.api_key for a in accounts]
    if len(set(keys)) != len(keys):
        raise ConfigError(name, "holds one apiKey under two account ids")
    return tuple(accounts)


def stray_keys(raw: str | None) -> tuple[str, ...]:
    """Keys in a secret mock mode ignores: not validated (mock needs none), still gated."""
    if raw is None:
        return ()
    try:
        import json

        data: Any = json.loads(raw)
    except ValueError:
        return (raw,)  # unreadable: gate the whole text
    entries = data if isinstance(data, list) else []
    return tuple(
        e["apiKey"] for e in entries if isinstance(e, dict) and isinstance(e.get("apiKey"), str)
    )


def _account_id_ok(account_id: str) -> bool:
    import re

    return re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}", account_id) is not None


def fixtures_dir(env: Env, mode: Mode) -> Path:
    """`CHARTS_FIXTURES_DIR`: must exist for mock and record, and be writable for record."""
    raw = env.text("CHARTS_FIXTURES_DIR")
    folder = Path(raw) if raw else SHIPPED_FIXTURES
    if mode == "real":
        return folder
    if not folder.is_dir():
        raise ConfigError("CHARTS_FIXTURES_DIR", "must be an existing directory")
    if mode == "record" and not os.access(folder, os.W_OK):
        raise ConfigError("CHARTS_FIXTURES_DIR", "must be writable in record mode")
    return folder


def timezone(env: Env) -> str:
    """An IANA zone name the system knows (`Etc/UTC`, `Europe/Berlin`)."""
    name = env.text("CHARTS_DEFAULT_TIMEZONE", "Etc/UTC") or "Etc/UTC"
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError("CHARTS_DEFAULT_TIMEZONE", "must be an IANA time zone name") from None
    return name


def base_url(env: Env, deployment: str) -> str:
    """§6: `https://`, or a loopback `http://` (the stub) outside prod."""
    name = "CHART_IMG_BASE_URL"
    raw = env.text(name, "https://api.chart-img.com") or "https://api.chart-img.com"
    try:
        parts = urlsplit(raw)
        host = parts.hostname or ""
        parts.port  # noqa: B018 (raises on a malformed port)
    except ValueError:
        raise ConfigError(name, "must be a URL") from None
    if parts.username or parts.password or parts.query or parts.fragment or not host:
        raise ConfigError(name, "must be a plain scheme://host[:port][/path] URL")
    if parts.scheme == "https":
        return raw.rstrip("/")
    if parts.scheme == "http" and _loopback(host) and deployment.lower() not in PRODUCTION_ENVS:
        return raw.rstrip("/")
    raise ConfigError(name, "must be https:// (a loopback http:// only outside prod)")


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False

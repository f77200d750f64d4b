"""deploy/deploy.sh --worker backtest (BACKTEST §15), offline against the fake gcloud.

The generic script and its fakes are tested in `tests/test_deploy_scripts.py`; this checks what
the backtest profile (`deploy/workers/backtest.sh`) makes of them: the job function on
`created` (or `written` with --requeue) events of backtestJobs/{jobId}, no retry policy and no
secret; the sweeper as an authenticated HTTP function on a 10-minute OIDC schedule; the
runtime account limited to Firestore and reading the history bucket; and the security rules
released only on an explicit flag, which otherwise says where the file is.
"""

from __future__ import annotations

import re
import shlex
import sys

import pytest

from devstack import REPO_ROOT
from tests.test_deploy_scripts import (
    DEPLOY,
    FIXTURES,
    PROJECT,
    REGION,
    RUNTIME_SA,
    TRIGGER_SA,
    Fakes,
    binding,
    find,
    plan_commands,
)
from tests.test_deploy_scripts import fakes as base_fakes  # noqa: F401  (a pytest fixture)

HISTORY = "demo-history"
CREATED = "google.cloud.firestore.document.v1.created"
WRITTEN = "google.cloud.firestore.document.v1.written"
BACKTEST_VARIABLES = (
    "HISTORY_BUCKET",
    "HISTORY_PREFIX",
    "HISTORY_MAX_BYTES",
    "JOB_LEASE_SECONDS",
    "BACKTEST_JOBS_COLLECTION",
    "BACKTEST_RESULTS_COLLECTION",
    "RELEASE_RULES",
    "EVENT_TYPE",
    "WORKER",
)
ENV = {
    "PROJECT": PROJECT,
    "REGION": REGION,
    "RUNTIME_SA": RUNTIME_SA,
    "TRIGGER_SA": TRIGGER_SA,
    "HISTORY_BUCKET": f"gs://{HISTORY}",
    "HISTORY_PREFIX": "prices",
    "ENV": "prod",
}


@pytest.fixture
def shell(base_fakes: Fakes) -> Fakes:  # noqa: F811
    """The generic deploy tests' fake gcloud and curl, without the backtest variables of the
    developer's own shell."""
    for name in BACKTEST_VARIABLES:
        base_fakes.base_env.pop(name, None)
    return base_fakes


def run(shell: Fakes, *args: str, **env: str):
    return shell.run(DEPLOY, "--worker", "backtest", *args, env={**ENV, **env})


def with_firebase(shell: Fakes) -> None:
    wrapper = shell.bin_dir / "firebase"
    wrapper.write_text(
        f"#!/bin/sh\nexec {shlex.quote(sys.executable)} "
        f'{shlex.quote(str(FIXTURES / "fake_firebase.py"))} "$@"\n',
        encoding="utf-8",
    )
    wrapper.chmod(0o755)


def test_the_plan_deploys_the_job_function_and_the_sweeper(shell: Fakes) -> None:
    result = run(shell, "--dry-run")
    assert result.returncode == 0, result.stderr
    commands = plan_commands(result.stdout)
    [deploy] = find(commands, "gcloud", "functions", "deploy", "worker-backtest")
    for flag in (
        "--gen2",
        "--runtime=python312",
        "--entry-point=on_backtest_job_written",
        f"--service-account={RUNTIME_SA}",
        "--timeout=540s",
        "--concurrency=1",
        "--memory=512Mi",
        f"--trigger-event-filters=type={CREATED}",
        "--trigger-event-filters=database=(default)",
        "--trigger-event-filters-path-pattern=document=backtestJobs/{jobId}",
        f"--trigger-service-account={TRIGGER_SA}",
    ):
        assert flag in deploy, flag
    assert not [a for a in deploy if a.startswith(("--retry", "--set-secrets"))]
    [sweeper] = find(commands, "gcloud", "functions", "deploy", "worker-backtest-recover")
    for flag in ("--entry-point=sweep_stale_jobs", "--trigger-http", "--no-allow-unauthenticated"):
        assert flag in sweeper, flag
    url = f"https://{REGION}-{PROJECT}.cloudfunctions.net/worker-backtest-recover"
    [job] = find(commands, "gcloud", "scheduler", "jobs", "create", "http")
    assert "--schedule=*/10 * * * *" in job and f"--oidc-token-audience={url}" in job
    assert f"--oidc-service-account-email={TRIGGER_SA}" in job
    assert shell.mutating() == []


def test_the_runtime_account_gets_firestore_and_reads_the_history_bucket_only(
    shell: Fakes,
) -> None:
    commands = plan_commands(run(shell, "--dry-run").stdout)
    runtime = f"--member=serviceAccount:{RUNTIME_SA}"
    datastore = binding(commands, "roles/datastore.user")
    assert datastore[:4] == ["gcloud", "projects", "add-iam-policy-binding", PROJECT]
    viewer = binding(commands, "roles/storage.objectViewer")
    assert viewer[:5] == [
        "gcloud",
        "storage",
        "buckets",
        "add-iam-policy-binding",
        f"gs://{HISTORY}",
    ]
    runtime_roles = sorted(
        next(a for a in argv if a.startswith("--role=")) for argv in commands if runtime in argv
    )
    assert runtime_roles == ["--role=roles/datastore.user", "--role=roles/storage.objectViewer"]
    assert not [argv for argv in commands if "secretmanager" in " ".join(argv)]


def test_without_a_history_bucket_there_is_no_storage_binding(shell: Fakes) -> None:
    result = run(shell, "--dry-run", HISTORY_BUCKET="", HISTORY_PREFIX="")
    assert result.returncode == 0, result.stderr
    assert not [a for a in plan_commands(result.stdout) if "storage" in a[:3]]
    assert "history jobs fail HISTORY_UNAVAILABLE" in result.stdout


def test_the_function_environment_carries_the_worker_s_variables(shell: Fakes) -> None:
    result = run(shell, "--yes", JOB_LEASE_SECONDS="1200", HISTORY_MAX_BYTES="1048576")
    assert result.returncode == 0, result.stderr
    [deploy, _] = [c for c in shell.calls() if c.get("argv", [])[:2] == ["functions", "deploy"]]
    env_file = deploy["env_vars_file"]
    for line in (
        f"HISTORY_BUCKET: '{HISTORY}'",
        "HISTORY_PREFIX: 'prices'",
        "HISTORY_MAX_BYTES: '1048576'",
        "JOB_LEASE_SECONDS: '1200'",
        "INVOCATION_TIMEOUT_SECONDS: '540'",
    ):
        assert f"{line}\n" in env_file, line
    assert "from entry import on_backtest_job_written, sweep_stale_jobs\n" in deploy["main_py"]
    requirements = deploy["requirements"]
    assert re.search(r"^google-cloud-firestore==", requirements, re.MULTILINE)
    assert not re.search(r"^(matplotlib|numpy)==", requirements, re.MULTILINE)  # the plot extra
    assert "wheelsim/result.py" in deploy["source_files"]


def test_requeue_triggers_on_written(shell: Fakes) -> None:
    result = run(shell, "--dry-run", "--requeue")
    assert result.returncode == 0, result.stderr
    [deploy] = find(
        plan_commands(result.stdout), "gcloud", "functions", "deploy", "worker-backtest"
    )
    assert f"--trigger-event-filters=type={WRITTEN}" in deploy


def test_rules_are_not_released_by_default_and_the_plan_says_where_the_file_is(
    shell: Fakes,
) -> None:
    with_firebase(shell)
    result = run(shell, "--yes")
    assert result.returncode == 0, result.stderr
    assert "security rules:     not released" in result.stdout
    assert str(REPO_ROOT / "firestore.rules") in result.stdout
    assert not [c for c in shell.calls() if c["tool"] == "firebase"]


def test_release_rules_releases_the_shipped_file_last(shell: Fakes) -> None:
    with_firebase(shell)
    result = run(shell, "--yes", "--release-rules", FIRESTORE_DATABASE="tda-db")
    assert result.returncode == 0, result.stderr
    assert "REPLACES ITS WHOLE RULESET" in result.stdout
    calls = shell.calls()
    [release] = [c for c in calls if c["tool"] == "firebase"]
    assert calls[-1] is not None and calls.index(release) == len(calls) - 1
    assert release["argv"][:3] == ["deploy", "--only", "firestore:rules"]
    assert f"--project={PROJECT}" in release["argv"]
    assert release["config"] == {"firestore": [{"database": "tda-db", "rules": "firestore.rules"}]}
    assert release["rules"] == (REPO_ROOT / "firestore.rules").read_text(encoding="utf-8")


def test_release_rules_needs_the_firebase_cli(shell: Fakes) -> None:
    result = run(shell, "--dry-run", "--release-rules", PATH=f"{shell.bin_dir}:/usr/bin:/bin")
    assert result.returncode == 2
    assert "--release-rules needs the Firebase CLI" in result.stderr
    assert shell.mutating() == []


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"JOB_LEASE_SECONDS": "599"}, "JOB_LEASE_SECONDS must be at least 600"),
        ({"HISTORY_BUCKET": "Not A Bucket"}, "HISTORY_BUCKET must be a bucket name"),
        ({"HISTORY_BUCKET": "", "HISTORY_PREFIX": "p"}, "HISTORY_PREFIX needs HISTORY_BUCKET"),
        ({"HISTORY_MAX_BYTES": "4MB"}, "HISTORY_MAX_BYTES must be a whole number"),
        ({"BACKTEST_RESULTS_COLLECTION": "backtestJobs"}, "must differ"),
    ],
)
def test_configuration_problems_are_refused_before_anything_runs(
    shell: Fakes, env: dict[str, str], message: str
) -> None:
    result = run(shell, "--dry-run", **env)
    assert result.returncode == 2
    assert message in result.stderr
    assert shell.mutating() == []


def test_the_help_lists_the_worker_s_variables_and_flags(shell: Fakes) -> None:
    result = run(shell, "--help")
    assert result.returncode == 0
    for needle in (
        "Worker backtest (BACKTEST §15)",
        "--requeue",
        "--release-rules",
        "HISTORY_BUCKET",
    ):
        assert needle in result.stdout

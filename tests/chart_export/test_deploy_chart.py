"""`deploy/deploy.sh --worker chart-export` (CHART_EXPORT §19), offline against the fake gcloud:
its own function and entry point, the scheduler-driven recovery function, its one secret, the
least-privilege bindings, `--max-instances=10`, no retry policy."""

from __future__ import annotations

import pytest

from tests.test_deploy_scripts import (
    BUCKET,
    DEPLOY,
    PROJECT,
    REGION,
    RUNTIME_SA,
    TRIGGER_SA,
    Fakes,
    binding,
    find,
    plan_commands,
)

CHART_ENV = {
    "PROJECT": PROJECT,
    "REGION": REGION,
    "RUNTIME_SA": "charts@demo-project.iam.gserviceaccount.com",
    "TRIGGER_SA": TRIGGER_SA,
    "ARTIFACTS_BUCKET": f"gs://{BUCKET}",
    "ENV": "prod",
}


def plan(fakes: Fakes, *args: str, **env: str) -> list[list[str]]:
    result = fakes.run(
        DEPLOY, "--worker", "chart-export", "--dry-run", *args, env={**CHART_ENV, **env}
    )
    assert result.returncode == 0, result.stderr
    assert fakes.mutating() == []
    return plan_commands(result.stdout)


def test_the_chart_function_its_trigger_and_its_limits(fakes: Fakes) -> None:
    commands = plan(fakes)
    [deploy] = find(commands, "gcloud", "functions", "deploy", "worker-chart-export")
    assert "--entry-point=on_chart_export_flow_run_updated" in deploy
    assert "--timeout=540s" in deploy and "--concurrency=1" in deploy
    assert "--max-instances=10" in deploy
    assert "--runtime=python312" in deploy and "--gen2" in deploy
    assert "--trigger-event-filters=type=google.cloud.firestore.document.v1.updated" in deploy
    assert "--trigger-event-filters-path-pattern=document=flow_runs/{runId}" in deploy
    assert (
        f"--set-secrets=CHART_IMG_ACCOUNTS_JSON=projects/{PROJECT}/secrets/"
        "chart-img-accounts:latest"
    ) in deploy
    assert not any("retry" in arg for argv in commands for arg in argv)  # COMMON.md §2
    [recovery] = find(commands, "gcloud", "functions", "deploy", "worker-chart-export-recover")
    assert "--entry-point=recover_stale_chart_steps" in recovery
    assert "--trigger-http" in recovery and "--no-allow-unauthenticated" in recovery
    [job] = find(commands, "gcloud", "scheduler", "jobs", "create", "http")
    assert "--schedule=*/10 * * * *" in job


def test_the_environment_file_sets_real_mode_and_the_plan(fakes: Fakes) -> None:
    result = fakes.run(
        DEPLOY,
        "--worker",
        "chart-export",
        "--dry-run",
        "--plan",
        "PRO",
        env={**CHART_ENV, "CHART_RENDER_CONCURRENCY": "2"},
    )
    assert result.returncode == 0, result.stderr
    environment = result.stdout.split("Function environment", 1)[1].split("Commands", 1)[0]
    assert "CHARTS_API_MODE: 'real'" in environment
    assert "CHART_IMG_PLAN: 'PRO'" in environment
    assert "CHART_RENDER_CONCURRENCY: '2'" in environment
    assert f"ARTIFACTS_BUCKET: '{BUCKET}'" in environment
    assert "GEMINI" not in environment and "CHART_IMG_ACCOUNTS_JSON" not in environment


def test_least_privilege_its_own_secret_only(fakes: Fakes) -> None:
    commands = plan(fakes, "--charts-secret", "chart-img-accounts-prod")
    member = f"--member=serviceAccount:{CHART_ENV['RUNTIME_SA']}"
    datastore = binding(commands, "roles/datastore.user")
    assert member in datastore and datastore[:3] == ["gcloud", "projects", "add-iam-policy-binding"]
    for role in ("roles/storage.objectCreator", "roles/storage.objectViewer"):
        bucket = binding(commands, role)
        assert bucket[:4] == ["gcloud", "storage", "buckets", "add-iam-policy-binding"]
        assert f"gs://{BUCKET}" in bucket and member in bucket
    secret = binding(commands, "roles/secretmanager.secretAccessor")
    assert secret[:4] == ["gcloud", "secrets", "add-iam-policy-binding", "chart-img-accounts-prod"]
    assert member in secret
    roles = {arg for argv in commands for arg in argv if arg.startswith("--role=")}
    assert "--role=roles/storage.objectAdmin" not in roles
    assert not any("gemini" in arg.lower() for argv in commands for arg in argv)


@pytest.mark.parametrize(
    ("env", "problem"),
    [
        ({"ARTIFACTS_BUCKET": ""}, "ARTIFACTS_BUCKET"),
        ({"CHARTS_SECRET": "projects/x/secrets/y"}, "CHARTS_SECRET"),
        ({"CHART_IMG_PLAN": "FREE"}, "CHART_IMG_PLAN"),
        ({"CHART_TEMPLATES_COLLECTION": "a/b"}, "CHART_TEMPLATES_COLLECTION"),
    ],
)
def test_bad_settings_are_refused_before_any_change(fakes: Fakes, env, problem) -> None:
    result = fakes.run(DEPLOY, "--worker", "chart-export", "--dry-run", env={**CHART_ENV, **env})
    assert result.returncode == 2 and problem in result.stderr
    assert fakes.mutating() == []


def test_a_key_in_the_shell_is_ignored_and_never_printed(fakes: Fakes) -> None:
    secret = "shell-only-key-must-not-print"
    result = fakes.run(
        DEPLOY,
        "--worker",
        "chart-export",
        "--dry-run",
        env={**CHART_ENV, "CHART_IMG_ACCOUNTS_JSON": f'[{{"id":"a","apiKey":"{secret}"}}]'},
    )
    assert result.returncode == 0
    assert "CHART_IMG_ACCOUNTS_JSON is set in this shell" in result.stderr
    assert secret not in result.stdout + result.stderr


def test_help_names_the_chart_worker(fakes: Fakes) -> None:
    shown = fakes.run(DEPLOY, "--worker", "chart-export", "--help", env=CHART_ENV)
    assert shown.returncode == 0 and "Worker chart-export (CHART_EXPORT §19)" in shown.stdout
    assert RUNTIME_SA not in shown.stdout

"""The crash hook exists only when its test variable is set."""

from __future__ import annotations

from types import SimpleNamespace

from engine.faults import crash_hook


def test_no_variable_no_hook():
    assert crash_hook({}) is None
    assert crash_hook({"WORKER_TEST_CRASH_AT": " "}) is None


def test_hook_fires_once_per_marker(tmp_path, monkeypatch):
    kills = []
    monkeypatch.setattr("os.kill", lambda pid, sig: kills.append(sig))
    hook = crash_hook(
        {"WORKER_TEST_CRASH_AT": "RUNNING_write", "WORKER_TEST_CRASH_ONCE_DIR": str(tmp_path)}
    )
    assert hook is not None
    model = SimpleNamespace(run_id="r", step_id="s")
    hook(SimpleNamespace(transition=SimpleNamespace(dest="RUNNING_generate"), model=model))
    assert kills == []
    hook(SimpleNamespace(transition=SimpleNamespace(dest="RUNNING_write"), model=model))
    hook(SimpleNamespace(transition=SimpleNamespace(dest="RUNNING_write"), model=model))
    assert len(kills) == 1

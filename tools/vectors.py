"""Snapshot regression run of every worker's vectors, on the emulators.

Runs the vector suites of the three workers (`tests/test_vectors.py`,
`tests/chart_export/test_chart_vectors.py`, `tests/backtest/test_worker_vectors.py`) and
reports, by worker and vector name, which ones no longer match their committed snapshot (or
their expectations). Exit 0 when none changed.
Usage: `uv run python -m tools.vectors [--worker NAME]` (add `--snapshot-update` to accept the new
results, then read `git diff snapshots/` before committing).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

from devstack import REPO_ROOT

SUITES = {
    "llm_client": "tests/test_vectors.py",
    "chart_export": "tests/chart_export/test_chart_vectors.py",
    "backtest": "tests/backtest/test_worker_vectors.py",
}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.vectors", description=__doc__)
    parser.add_argument("--worker", choices=sorted(SUITES), help="one worker's vectors only")
    args, pytest_args = parser.parse_known_args(argv)
    suites = {args.worker: SUITES[args.worker]} if args.worker else SUITES
    by_module = {Path(path).stem: worker for worker, path in suites.items()}
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "vectors.xml"
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                *suites.values(),
                "-q",
                "-p",
                "no:cacheprovider",
                "-k",
                "test_vector",
                f"--junitxml={report}",
                *pytest_args,
            ],
            cwd=REPO_ROOT,
            check=False,
            stdout=subprocess.DEVNULL,
        )
        if not report.exists():
            print("the vector suites did not run", file=sys.stderr)
            return 2
        changed, unchanged = [], 0
        for case in ET.parse(report).getroot().iter("testcase"):
            worker = by_module.get(case.get("classname", "").rsplit(".", 1)[-1], "?")
            vector = case.get("name", "").removeprefix("test_vector[").removesuffix("]")
            problem = case.find("failure")
            if problem is None:
                problem = case.find("error")
            if problem is None:
                unchanged += 1
            else:
                first = (problem.get("message") or "").splitlines()[0][:160]
                changed.append(f"changed: {worker}: {vector}: {first}")
    for line in changed:
        print(line)
    print(f"{len(changed)} changed, {unchanged} unchanged")
    return 1 if changed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

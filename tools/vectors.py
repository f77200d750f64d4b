"""Snapshot regression run of the failure-path vectors (`tests/vectors/`).

Runs the vector suite against the emulators and reports, by vector name, which ones no longer
match their committed snapshot (or their expectations). Exit 0 when none changed.
Usage: `uv run python -m tools.vectors` (add `--snapshot-update` to accept the new results,
then read `git diff snapshots/` before committing).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def main(argv: list[str]) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "vectors.xml"
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "tests/test_vectors.py",
                "-q",
                "-p",
                "no:cacheprovider",
                f"--junitxml={report}",
                *argv,
            ],
            cwd=REPO,
            check=False,
            stdout=subprocess.DEVNULL,
        )
        if not report.exists():
            print("the vector suite did not run", file=sys.stderr)
            return 2
        cases = ET.parse(report).getroot().iter("testcase")
        changed, unchanged = [], 0
        for case in cases:
            name = case.get("name", "")
            vector = name.removeprefix("test_vector[").removesuffix("]")
            problem = (
                case.find("failure") if case.find("failure") is not None else case.find("error")
            )
            if problem is None:
                unchanged += 1
            else:
                first = (problem.get("message") or "").splitlines()[0][:160]
                changed.append(f"changed: {vector}: {first}")
    for line in changed:
        print(line)
    print(f"{len(changed)} changed, {unchanged} unchanged")
    return 1 if changed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

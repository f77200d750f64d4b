"""A stand-in for the Firebase CLI used by tests/backtest/test_deploy.py (never reaches Firebase).

Every call is appended to $FAKE_LOG as one JSON line, with the configuration file it was given
and the rules file that configuration names (read at call time, as the real CLI would).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def main(args: list[str]) -> int:
    entry: dict[str, object] = {"tool": "firebase", "argv": args}
    config = next((a.split("=", 1)[1] for a in args if a.startswith("--config=")), None)
    if config and Path(config).is_file():
        settings = json.loads(Path(config).read_text(encoding="utf-8"))
        entry["config"] = settings
        rules = Path(config).parent / settings["firestore"][0]["rules"]
        entry["rules"] = rules.read_text(encoding="utf-8") if rules.is_file() else None
    with open(os.environ["FAKE_LOG"], "a", encoding="utf-8") as sink:
        sink.write(json.dumps(entry) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

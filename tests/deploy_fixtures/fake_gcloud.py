"""A stand-in for `gcloud` used by tests/test_deploy_scripts.py (never touches Google Cloud).

Every call is appended to $FAKE_LOG as one JSON line. Read-only queries are answered from the
environment:
  FAKE_FIRESTORE_LOCATION   locationId of `firestore databases describe` (empty: exit 1)
  FAKE_FUNCTION_EXISTS      "1": `functions describe` succeeds; otherwise exit 1 (not found)
  FAKE_SCHEDULER_JOB_EXISTS "1": `scheduler jobs describe` succeeds; otherwise exit 1
  FAKE_LOGS                 "none": `logging read` prints nothing; otherwise one matching event
  FAKE_GCLOUD_FAIL_ON       exit 1 for any call whose joined argv contains this text
  FAKE_STATE_DIR            where `storage cp` / `storage rm` keep the fake bucket contents
                            (objects/; every upload is also kept in uploaded/)
Other commands succeed silently.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

TOKEN = "fake-access-token"


def flag(args: list[str], name: str) -> str | None:
    for arg in args:
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def object_path(state: Path, uri: str) -> Path:
    return state / "objects" / uri.removeprefix("gs://").replace("/", "__")


def main(args: list[str]) -> int:
    entry: dict[str, object] = {"tool": "gcloud", "argv": args}
    if args[:2] == ["functions", "deploy"]:
        source = flag(args, "--source")
        if source:
            root = Path(source)
            entry["source_files"] = sorted(
                str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()
            )
            for name in ("requirements.txt", "main.py"):
                if (root / name).is_file():
                    entry[name.replace(".txt", "").replace(".", "_")] = (root / name).read_text(
                        encoding="utf-8"
                    )
        env_file = flag(args, "--env-vars-file")
        if env_file and Path(env_file).is_file():
            entry["env_vars_file"] = Path(env_file).read_text(encoding="utf-8")
    with open(os.environ["FAKE_LOG"], "a", encoding="utf-8") as sink:
        sink.write(json.dumps(entry) + "\n")

    fail_on = os.environ.get("FAKE_GCLOUD_FAIL_ON")
    if fail_on and fail_on in " ".join(args):
        print(f"ERROR: (gcloud) fake failure for {fail_on}", file=sys.stderr)
        return 1

    state = Path(os.environ.get("FAKE_STATE_DIR", "/nonexistent"))
    if args[:3] == ["firestore", "databases", "describe"]:
        location = os.environ.get("FAKE_FIRESTORE_LOCATION", "us-central1")
        if not location:
            print("ERROR: (gcloud.firestore.databases.describe) NOT_FOUND", file=sys.stderr)
            return 1
        print(location)
    elif args[:2] == ["functions", "describe"]:
        if os.environ.get("FAKE_FUNCTION_EXISTS") != "1":
            print("ERROR: (gcloud.functions.describe) NOT_FOUND", file=sys.stderr)
            return 1
        print("projects/p/locations/r/functions/f")
    elif args[:3] == ["scheduler", "jobs", "describe"]:
        if os.environ.get("FAKE_SCHEDULER_JOB_EXISTS") != "1":
            print("ERROR: (gcloud.scheduler.jobs.describe) NOT_FOUND", file=sys.stderr)
            return 1
        print("projects/p/locations/r/jobs/j")
    elif args[:2] == ["auth", "print-access-token"]:
        print(TOKEN)
    elif args[:2] == ["storage", "cp"]:
        source, destination = args[2], args[3]
        target = object_path(state, destination)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(Path(source).read_bytes())
        kept = state / "uploaded" / target.name  # survives `storage rm`, for the assertions
        kept.parent.mkdir(parents=True, exist_ok=True)
        kept.write_bytes(target.read_bytes())
    elif args[:2] == ["storage", "rm"]:
        missing = False
        for uri in (a for a in args[2:] if a.startswith("gs://")):
            target = object_path(state, uri)
            if target.exists():
                target.unlink()
            else:
                missing = True
        if missing:
            print("ERROR: (gcloud.storage.rm) object not found", file=sys.stderr)
            return 1
    elif args[:2] == ["logging", "read"] and os.environ.get("FAKE_LOGS") != "none":
        match = re.search(r'jsonPayload\.event="([a-z_]+)"', args[2])
        print(match.group(1) if match else "entry")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

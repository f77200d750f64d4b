"""`worker-llm-client`: the operator's command line.

Subcommands: `run-local` (one step, no cloud services), `record` (the same against the real
Gemini API, saving cassettes), `diagram` (the lifecycle diagram), `dev up` (the local stack).
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="worker-llm-client", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    diagram = commands.add_parser("diagram", help="write docs/lifecycle.md from the machine table")
    diagram.add_argument("--check", action="store_true", help="exit 1 when the file is stale")
    args = parser.parse_args(argv)
    if args.command == "diagram":
        from tools import diagram as diagram_tool

        return diagram_tool.main(["--check"] if args.check else [])
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":
    sys.exit(main())

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
    from tools import run_local

    run_parser = commands.add_parser("run-local", help="execute one step with no cloud services")
    run_local.add_arguments(run_parser)
    record_parser = commands.add_parser(
        "record", help="run-local against the real Gemini API, saving responses as cassettes"
    )
    run_local.add_arguments(record_parser)
    diagram = commands.add_parser("diagram", help="write docs/lifecycle.md from the machine table")
    diagram.add_argument("--check", action="store_true", help="exit 1 when the file is stale")
    args = parser.parse_args(argv)
    if args.command in ("run-local", "record"):
        return run_local.run(args, record=args.command == "record")
    if args.command == "diagram":
        from tools import diagram as diagram_tool

        return diagram_tool.main(["--check"] if args.check else [])
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":
    sys.exit(main())

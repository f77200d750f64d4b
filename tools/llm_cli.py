"""`worker-llm-client`: the LLM worker's command line.

Subcommands: `run-local` (one step, no cloud services), `record` (the same against the real
Gemini API, saving cassettes), `diagram` (the lifecycle diagram), `dev up` (the local pipeline
of all three workers).
"""

from __future__ import annotations

import argparse
import sys

from tools.common import add_dev_command, recover_stale, run_dev_command


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="worker-llm-client", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    from tools import llm_run_local as run_local

    run_parser = commands.add_parser("run-local", help="execute one step with no cloud services")
    run_local.add_arguments(run_parser)
    record_parser = commands.add_parser(
        "record", help="run-local against the real Gemini API, saving responses as cassettes"
    )
    run_local.add_arguments(record_parser)
    stale = commands.add_parser(
        "recover-stale",
        help="finalize or fail LLM_REPORT steps RUNNING longer than the lease (uses the "
        "configured Firestore and GCS, as the deployed recover_stale_steps function does)",
    )
    stale.add_argument(
        "--lease-seconds", type=float, help="default: STALE_STEP_LEASE_SECONDS or 900"
    )
    add_dev_command(commands)
    diagram = commands.add_parser(
        "diagram", help="print the lifecycle diagram (--write: docs/llm_client-lifecycle.md)"
    )
    diagram.add_argument("--write", action="store_true", help="write the file")
    diagram.add_argument("--check", action="store_true", help="exit 1 when the file is stale")
    args = parser.parse_args(argv)
    if args.command in ("run-local", "record"):
        return run_local.run(args, record=args.command == "record")
    if args.command == "recover-stale":
        return recover_stale("llm_client", args.lease_seconds)
    if args.command == "dev":
        return run_dev_command(args)
    if args.command == "diagram":
        from tools import diagram as diagram_tool

        flags = ["--check"] if args.check else ["--write"] if args.write else []
        return diagram_tool.main([*flags, "llm_client"])
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":
    sys.exit(main())

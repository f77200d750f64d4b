"""`worker-llm-client`: the LLM worker's command line.

Subcommands: `run-local` (one step, no cloud services), `record` (the same against the real
Gemini API, saving cassettes), `diagram` (the lifecycle diagram), `dev up` (the local pipeline
of all three workers).
"""

from __future__ import annotations

import argparse
import sys

from tools.common import add_dev_command, add_diagram_command, add_recover_command, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="worker-llm-client", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    from tools import llm_run_local as run_local

    run_parser = commands.add_parser("run-local", help="execute one step with no cloud services")
    run_local.add_arguments(run_parser)
    run_parser.set_defaults(run=lambda args: run_local.run(args, record=False))
    record_parser = commands.add_parser(
        "record", help="run-local against the real Gemini API, saving responses as cassettes"
    )
    run_local.add_arguments(record_parser)
    record_parser.set_defaults(run=lambda args: run_local.run(args, record=True))
    add_recover_command(
        commands,
        "llm_client",
        help="finalize or fail LLM_REPORT steps RUNNING longer than the lease (uses the "
        "configured Firestore and GCS, as the deployed recover_stale_steps function does)",
    )
    add_dev_command(commands)
    add_diagram_command(commands, "llm_client")
    return run(parser, argv)


if __name__ == "__main__":
    sys.exit(main())

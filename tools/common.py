"""What every worker's command line shares: exit codes (COMMON.md §9), the stale-work scan,
the diagram and `dev up` (the local pipeline of all three workers, mounted on each command line
alike). Every subcommand, shared or not, carries its own handler (`args.run`), which `run`
calls: a command line declares its subcommands and never dispatches by name."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def run(parser: argparse.ArgumentParser, argv: list[str] | None) -> int:
    """Parse `argv` and run the chosen subcommand's handler; its exit code is the process's."""
    args = parser.parse_args(argv)
    code: int = args.run(args)
    return code


def add_recover_command(commands: Any, worker: str, help: str) -> None:
    """`recover-stale [--lease-seconds S]` on a step worker's command line."""
    stale = commands.add_parser("recover-stale", help=help)
    stale.add_argument("--lease-seconds", type=float, help="default: STALE_STEP_LEASE_SECONDS")
    stale.set_defaults(run=lambda args: recover_stale(worker, args.lease_seconds))


def add_diagram_command(commands: Any, worker: str) -> None:
    """`diagram [--write] [--check]`: the worker's lifecycle diagram, drawn from its table."""
    diagram = commands.add_parser(
        "diagram", help=f"print the lifecycle diagram (--write: docs/{worker}-lifecycle.md)"
    )
    diagram.add_argument("--write", action="store_true", help="write the file")
    diagram.add_argument("--check", action="store_true", help="exit 1 when the file is stale")
    diagram.set_defaults(run=lambda args: _diagram(args, worker))


def _diagram(args: argparse.Namespace, worker: str) -> int:
    from tools import diagram

    flags = ["--check"] if args.check else ["--write"] if args.write else []
    return diagram.main([*flags, worker])


def add_dev_command(commands: Any) -> None:
    """`dev up` on a command line's subparsers (`argparse._SubParsersAction`)."""
    from devstack import dev_up

    dev = commands.add_parser("dev", help="the local development stack")
    dev_commands = dev.add_subparsers(dest="dev_command", required=True)
    up = dev_commands.add_parser(
        "up",
        help="emulators, the Chart-IMG and Gemini stubs, every worker's function behind "
        "its Eventarc-like trigger, and the pipeline demo",
    )
    dev_up.add_arguments(up)
    up.set_defaults(run=dev_up.run)


def recover_stale(worker: str, lease_seconds: float | None) -> int:
    """One stale-work scan over the configured services, as the scheduler's function runs it."""
    import json

    import compose
    from engine.config import ConfigError
    from engine.exits import ExitCode

    try:
        runner = compose.build(worker, stream=sys.stderr)
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    lease = lease_seconds or runner.config.common.lease_s
    print(json.dumps(runner.scan(lease)))
    return ExitCode.SUCCEEDED


def read_flow_run(path: object) -> tuple[dict[str, Any], str] | str:
    """The flow run in a JSON file and its runId, or why it cannot be used (a usage error)."""
    import json
    from pathlib import Path

    try:
        document = json.loads(Path(str(path)).read_text(encoding="utf-8"))
        run_id = document["runId"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return f"cannot read a flow run with a runId from {path}: {type(exc).__name__}"
    if not isinstance(run_id, str):
        return f"cannot read a flow run with a runId from {path}: runId is not a string"
    return document, run_id


def outcome_exit(status: str, reason: str | None, unit_id: str | None, step_status: Any) -> int:
    """COMMON.md §9 from an invocation's outcome and the step as it ended."""
    from engine.exits import ExitCode

    if status == "noop":
        return ExitCode.NOTHING
    if unit_id is None:
        return ExitCode.INVALID if reason == "FLOW_RUN_INVALID" else ExitCode.FAILED
    return ExitCode.SUCCEEDED if step_status == "SUCCEEDED" else ExitCode.FAILED

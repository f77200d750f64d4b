"""`worker-backtest`: the backtest worker's command line.

Subcommands: `run-local` (one job through the deployed lifecycle, no cloud service),
`simulate` (the Wheel engine alone on a configUsed), `sweep-stale` (the sweeper against the
configured Firestore, as the deployed `sweep_stale_jobs` runs it), `diagram` (the lifecycle),
`dev up` (the local pipeline of all three workers).
Exit codes: see `tools/backtest_run_local.py` (COMMON.md §9).
"""

from __future__ import annotations

import argparse
import sys

from tools.common import add_dev_command, add_diagram_command


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="worker-backtest", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    from tools import backtest_run_local as local

    local.add_run_local_arguments(
        commands.add_parser("run-local", help="run one job with no cloud service")
    )
    simulate = commands.add_parser(
        "simulate",
        help="run engine 1.0.0 on a configUsed (inline prices); print the canonical "
        "backtestResult and its sha256",
    )
    simulate.add_argument("config", help="configUsed JSON (or a job holding one)")
    commands.add_parser(
        "sweep-stale",
        help="fail running jobs past their lease, complete those whose result exists "
        "(uses the configured Firestore, as the deployed sweep_stale_jobs does)",
    )
    add_dev_command(commands)
    add_diagram_command(commands, "backtest")
    args = parser.parse_args(argv)
    if hasattr(args, "run"):
        code: int = args.run(args)
        return code
    if args.command == "run-local":
        return local.run_local(args)
    if args.command == "simulate":
        from pathlib import Path

        return local.simulate_config(Path(args.config))
    if args.command == "sweep-stale":
        from tools.common import recover_stale

        return recover_stale("backtest", None)
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":
    sys.exit(main())

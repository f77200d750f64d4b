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
from pathlib import Path

from tools.common import add_dev_command, add_diagram_command, recover_stale, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="worker-backtest", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    from tools import backtest_run_local as local

    run_parser = commands.add_parser("run-local", help="run one job with no cloud service")
    local.add_run_local_arguments(run_parser)
    run_parser.set_defaults(run=local.run_local)
    simulate = commands.add_parser(
        "simulate",
        help="run engine 1.0.0 on a configUsed (inline prices); print the canonical "
        "backtestResult and its sha256",
    )
    simulate.add_argument("config", type=Path, help="configUsed JSON (or a job holding one)")
    simulate.set_defaults(run=lambda args: local.simulate_config(args.config))
    sweep = commands.add_parser(
        "sweep-stale",
        help="fail running jobs past their lease, complete those whose result exists "
        "(uses the configured Firestore, as the deployed sweep_stale_jobs does)",
    )
    sweep.set_defaults(run=lambda args: recover_stale("backtest", None))
    add_dev_command(commands)
    add_diagram_command(commands, "backtest")
    return run(parser, argv)


if __name__ == "__main__":
    sys.exit(main())

"""`worker-chart-export`: the CHART_EXPORT worker's command line (CHART_EXPORT §18).

Subcommands: `run-local` (one step, no cloud service: mock fixtures, in-memory Firestore, GCS
in a folder), `record` (the same against the real Chart-IMG API, saving fixtures),
`recover-stale` (the stale-step recovery over the configured services), `diagram`, `dev up`
(the local pipeline of all three workers).
Exit codes (COMMON.md §9): 0 SUCCEEDED, 1 FAILED, 2 usage or configuration error, 3 nothing to
execute, 4 flow run invalid.
"""

from __future__ import annotations

import argparse
import sys

from tools.common import add_dev_command, add_diagram_command, add_recover_command, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="worker-chart-export", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    from tools import chart_run_local as run_local

    run_parser = commands.add_parser(
        "run-local", help="execute one CHART_EXPORT step, no cloud service"
    )
    run_local.add_arguments(run_parser)
    run_parser.set_defaults(run=lambda args: run_local.run(args, record=False))
    record_parser = commands.add_parser(
        "record",
        help="run-local against the real Chart-IMG API, saving answers as fixtures "
        "(spends real quota; needs accounts)",
    )
    run_local.add_arguments(record_parser, record=True)
    record_parser.set_defaults(run=lambda args: run_local.run(args, record=True))
    add_recover_command(
        commands,
        "chart_export",
        help="adopt or fail CHART_EXPORT steps RUNNING longer than the lease (the configured "
        "Firestore and GCS, as the deployed recover_stale_chart_steps function does)",
    )
    add_dev_command(commands)
    add_diagram_command(commands, "chart_export")
    return run(parser, argv)


if __name__ == "__main__":
    sys.exit(main())

"""Runs every benchmark and prints the machine it ran on. `uv run python -m bench.run_all`."""

from __future__ import annotations

import os
import platform
import subprocess

from bench import (
    backtest_cold_start,
    backtest_engine,
    backtest_job,
    backtest_memory,
    chart_cold_start,
    chart_render,
    chart_reservations,
    cold_start,
    memory,
    noop,
    storm,
    success,
)

# The LLM worker's, then the chart worker's, then the backtest worker's.
ALL = (
    cold_start,
    noop,
    success,
    storm,
    memory,
    chart_cold_start,
    chart_render,
    chart_reservations,
    backtest_cold_start,
    backtest_engine,
    backtest_job,
    backtest_memory,
)


def machine() -> str:
    cpu = "unknown cpu"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    java = subprocess.run(["java", "-version"], capture_output=True, text=True).stderr.splitlines()
    return (
        f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GiB, {platform.system()} "
        f"{platform.release()}, Python {platform.python_version()}, "
        f"{java[0] if java else 'java ?'}"
    )


def main() -> None:
    print(f"machine: {machine()}")
    for module in ALL:
        print(f"\n## {module.__name__}")
        module.main()


if __name__ == "__main__":
    main()

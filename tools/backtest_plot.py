"""`run-local --plot`: the equity curve of a `backtestResult`, with its regimes and cycles.

matplotlib is an optional extra (`plot`), never a dependency of the deployed function: it is
imported only here, only when a plot is asked for, and its absence is a clear message.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

REGIME_COLOURS = {"uptrend": "#2e7d32", "downtrend": "#c62828", "sideways": "#9e9e9e"}
MISSING = (
    "--plot needs matplotlib, the optional `plot` extra: "
    "`uv sync --extra plot` (or `pip install 'tda-workers[plot]'`)"
)


def missing() -> str | None:
    """Why a plot cannot be drawn here, or None when it can."""
    try:
        found = importlib.util.find_spec("matplotlib") is not None
    except (ImportError, ValueError):  # a broken or blocked install
        found = False
    return None if found else MISSING


def draw(result: dict[str, Any], path: Path, title: str) -> None:
    """Equity per point; shaded bands for regime segments; dotted lines where cycles start and
    solid ones where they end; the starting capital as a dashed baseline."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display, no GUI toolkit
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    equity = result["equityCurve"]
    capital = result["configUsed"]["startingCapital"]
    figure, axes = plt.subplots(figsize=(11, 5), layout="constrained")
    for segment in result["regimeSegments"]:
        axes.axvspan(
            segment["startIndex"] - 0.5,
            segment["endIndex"] + 0.5,
            color=REGIME_COLOURS[segment["regime"]],
            alpha=0.12,
            linewidth=0,
        )
    for cycle in result["cycles"]:
        axes.axvline(cycle["startIndex"], color="#455a64", linestyle=":", linewidth=0.8)
        axes.axvline(cycle["endIndex"], color="#455a64", linestyle="-", linewidth=0.8)
    axes.axhline(capital, color="black", linestyle="--", linewidth=0.8)
    axes.plot(range(len(equity)), equity, color="#1565c0", linewidth=1.4)
    price = result["priceData"]
    axes.set_title(
        f"{title}: {result['configUsed']['symbol']} {price['firstDate']} .. {price['lastDate']}, "
        f"return {result['totalReturn'] * 100:+.2f} %, {result['cyclesCompleted']} cycles"
    )
    axes.set_xlabel("point")
    axes.set_ylabel("equity")
    axes.set_xlim(-0.5, len(equity) - 0.5)
    handles = [
        Patch(color="#1565c0", label="equity"),
        *(Patch(color=c, alpha=0.3, label=r) for r, c in REGIME_COLOURS.items()),
    ]
    axes.legend(handles=handles, loc="best", fontsize="small")
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)

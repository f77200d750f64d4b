"""What the backtest worker reaches the outside world through (all of them the engine's ports).

Firestore holds the jobs and results (`DocumentStore`: gated updates, create-only creations,
the sweeper's equality query); Cloud Storage holds the daily-close CSVs of `history` jobs
(`BlobStore`, bounded reads). The Wheel engine is not a port: it is pure and called directly.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.ports import BlobStore, DocumentStore


@dataclass(frozen=True)
class BacktestPorts:
    store: DocumentStore
    history: BlobStore

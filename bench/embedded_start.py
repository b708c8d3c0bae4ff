"""How long the embedded PostgreSQL takes to start (throwaway: initdb + start) and to restart.

Run: python bench/embedded_start.py [ROUNDS]
Prints the median and worst of each, next to the 3 s target.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from sqlgate.embedded import EmbeddedPostgres


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def main(rounds: int = 5) -> None:
    cold: list[float] = []
    warm: list[float] = []
    for _ in range(rounds):
        server = EmbeddedPostgres()
        cold.append(timed(server.start))
        server.stop()
    with tempfile.TemporaryDirectory() as tmp:
        EmbeddedPostgres(Path(tmp) / "pg").start().stop()
        for _ in range(rounds):
            server = EmbeddedPostgres(Path(tmp) / "pg")
            warm.append(timed(server.start))
            server.stop()
    for name, values in (("new cluster (initdb + start)", cold), ("existing cluster (start)", warm)):
        print(f"{name:32s} median {statistics.median(values):.2f} s  worst {max(values):.2f} s  target < 3 s")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5)

"""How fast pgwire cuts a result stream into frames, and decodes DataRow.

Run: python bench/pgwire.py [ROWS]
A stream of DataRow messages (5 columns, about 60 bytes each, like a small table row)
is cut into 64 KiB chunks, as a socket would deliver it, then:
  split       Framer.split per chunk (the relay's path: index only, forward batch.data)
  next_frame  Framer.next_frame per message (one bytes object per message)
  values      data_row_values of every frame in the batches (the masking path)
  decode      DataRow.decode of every frame (values plus the message object)
  bare walk   struct.unpack_from per header and nothing else: pure Python's floor
Figures are the best of 5 round-robin runs; the last line compares split with the bare walk.
"""

from __future__ import annotations

import struct
import sys
import time
from collections.abc import Callable

from sqlgate.pgwire.backend import DataRow, data_row_values
from sqlgate.pgwire.framing import Framer

CHUNK = 65_536
ROUNDS = 5


def make_stream(rows: int) -> bytes:
    row = DataRow((b"123456", b"alice@example.com", None, b"2026-11-25 13:47:52+00", b"1234.50")).encode()
    return row * rows


def chunks_of(data: bytes) -> list[bytes]:
    return [data[i : i + CHUNK] for i in range(0, len(data), CHUNK)]


def best_of(actions: dict[str, Callable[[], int]]) -> dict[str, tuple[float, int]]:
    """Fastest of ROUNDS runs of each action, run round-robin so load on the machine hits all alike."""
    times: dict[str, list[float]] = {name: [] for name in actions}
    counts: dict[str, int] = {}
    for _ in range(ROUNDS):
        for name, action in actions.items():
            start = time.perf_counter()
            counts[name] = action()
            times[name].append(time.perf_counter() - start)
    return {name: (min(times[name]), counts[name]) for name in actions}


def run_split(chunks: list[bytes]) -> int:
    framer = Framer("backend")
    frames = 0
    for chunk in chunks:
        frames += len(framer.split(chunk))
    return frames


def run_next_frame(chunks: list[bytes]) -> int:
    framer = Framer("backend")
    frames = 0
    for chunk in chunks:
        framer.feed(chunk)
        while framer.next_frame() is not None:
            frames += 1
    return frames


def run_decoder(chunks: list[bytes], decoder: Callable[[memoryview], object]) -> int:
    framer = Framer("backend")
    batches = [framer.split(chunk) for chunk in chunks]
    rows = 0
    for batch in batches:
        data = memoryview(batch.data)
        for _, start, end in batch.index:
            decoder(data[start + 5 : end])
            rows += 1
    return rows


def run_bare(data: bytes) -> int:
    unpack = struct.Struct("!BI").unpack_from
    pos, frames, size = 0, 0, len(data)
    while pos < size:
        _, length = unpack(data, pos)
        pos += 1 + length
        frames += 1
    return frames


def main(rows: int = 200_000) -> None:
    data = make_stream(rows)
    chunks = chunks_of(data)
    print(f"stream: {rows:,} DataRow messages, {len(data) / 1e6:.1f} MB, {len(chunks):,} chunks of 64 KiB")
    results = best_of(
        {
            "split": lambda: run_split(chunks),
            "next_frame": lambda: run_next_frame(chunks),
            "values": lambda: run_decoder(chunks, data_row_values),
            "decode": lambda: run_decoder(chunks, DataRow.decode),
            "bare walk": lambda: run_bare(data),
        }
    )
    for name, (elapsed, count) in results.items():
        assert count == rows, f"{name} counted {count} frames, expected {rows}"
        print(
            f"{name:11s} {count / elapsed / 1e6:6.2f} M frames/s  {len(data) / elapsed / 1e6:8.1f} MB/s"
            f"  {elapsed / count * 1e9:6.0f} ns/frame"
        )
    ratio = results["bare walk"][0] / results["split"][0]
    print(f"split / bare header walk: {ratio:.2f}x the frames per second (checks and index included)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200_000)

"""NDJSON streaming: a million rows through the gateway with flat memory."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Self

from tests.api.conftest import bearer

ROWS = 1_000_000
MEMORY_LIMIT = 50 * 1024 * 1024


def _rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


class _PeakRss:
    """Samples this process's resident memory (the gateway runs in it) every 20 ms."""

    def __init__(self) -> None:
        self.peak = _rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, _rss())

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()


def test_million_rows_stream_with_flat_memory(gateway, client):
    """1,000,000 rows arrive as NDJSON while the process grows by less than 50 MB."""
    token = gateway.token("erin", ("engineers",))
    request = {"database": "demo", "sql": f"SELECT g FROM generate_series(1, {ROWS}) g"}
    headers = {**bearer(token), "Accept": "application/x-ndjson"}
    client.post("/v1/query", headers=headers, json={**request, "sql": "SELECT g FROM generate_series(1, 10) g"})
    baseline = _rss()
    count, total, buffer = 0, 0, b""
    header = footer = None
    with _PeakRss() as memory, client.stream("POST", "/v1/query", headers=headers, json=request) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/x-ndjson")
        for chunk in response.iter_bytes():
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                if line.startswith(b"["):
                    count += 1
                    total += int(line[1:-1])
                elif header is None:
                    header = json.loads(line)
                else:
                    footer = json.loads(line)
    assert header == {"columns": [{"name": "g", "type": "int4"}]}
    assert count == ROWS
    assert total == ROWS * (ROWS + 1) // 2
    assert footer is not None
    assert footer["row_count"] == ROWS
    assert memory.peak - baseline < MEMORY_LIMIT, f"grew by {(memory.peak - baseline) / 2**20:.0f} MB"


def test_stream_errors_before_rows_are_problems(gateway, client):
    """A stream whose statement fails at once is an ordinary 400 problem."""
    token = gateway.token("erin", ("engineers",))
    headers = {**bearer(token), "Accept": "application/x-ndjson"}
    response = client.post("/v1/query", headers=headers, json={"database": "demo", "sql": "SELECT nope"})
    assert response.status_code == 400
    assert response.json()["sqlstate"] == "42703"


def test_stream_is_masked(gateway, client):
    """Streamed rows are masked like JSON ones."""
    token = gateway.token("alice", ("analysts",))
    headers = {**bearer(token), "Accept": "application/x-ndjson"}
    sql = "SELECT email FROM customers WHERE id <= 2 ORDER BY id"
    lines = client.post("/v1/query", headers=headers, json={"database": "demo", "sql": sql}).text.splitlines()
    assert [json.loads(line) for line in lines[1:3]] == [["c***@example.com"], ["c***@example.com"]]

"""Clients that keep querying through HAProxy, reconnecting after a failure, and remember what they saw."""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import psycopg


@dataclass
class Seen:
    """One client's history: errors with their time and SQLSTATE, outages (failure to next success)."""

    errors: list[tuple[float, str, str | None]] = field(default_factory=list)  # (time, class, sqlstate)
    outages: list[float] = field(default_factory=list)
    successes: list[float] = field(default_factory=list)
    pending_outage: float | None = None  # when the current outage started


class LoadClient(threading.Thread):
    """Connects through ``conninfo`` and runs a query every ``pause`` seconds until ``stop`` is set."""

    def __init__(self, conninfo: dict[str, Any], stop: threading.Event, pause: float = 0.02) -> None:
        super().__init__(daemon=True)
        self.conninfo = conninfo
        self.stop = stop
        self.pause = pause
        self.seen = Seen()

    def run(self) -> None:
        """Query, and on any failure note it and reconnect, until stopped."""
        while not self.stop.is_set():
            try:
                with psycopg.connect(**self.conninfo, sslmode="disable", autocommit=True, connect_timeout=5) as conn:
                    while not self.stop.is_set():
                        conn.execute("SELECT count(*) FROM orders").fetchone()
                        self._succeeded()
                        time.sleep(self.pause)
            except psycopg.Error as exc:
                self._failed(exc)
                time.sleep(0.05)

    def _succeeded(self) -> None:
        now = time.monotonic()
        self.seen.successes.append(now)
        if self.seen.pending_outage is not None:
            self.seen.outages.append(now - self.seen.pending_outage)
            self.seen.pending_outage = None

    def _failed(self, exc: psycopg.Error) -> None:
        now = time.monotonic()
        self.seen.errors.append((now, type(exc).__name__, exc.sqlstate))
        if self.seen.pending_outage is None:
            self.seen.pending_outage = now


def run_clients(clients: list[LoadClient]) -> None:
    """Start every client."""
    for client in clients:
        client.start()


def stop_clients(clients: list[LoadClient], stop: threading.Event) -> None:
    """Stop every client and wait for it."""
    stop.set()
    for client in clients:
        client.join(30)


def error_kinds(clients: list[LoadClient]) -> Counter[str]:
    """Errors seen, by ``Class(SQLSTATE)``."""
    return Counter(f"{kind}({state})" for client in clients for _t, kind, state in client.seen.errors)

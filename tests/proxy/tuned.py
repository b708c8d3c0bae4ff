"""Helpers for fault tests: a gateway with extra settings, raw wire clients, and audit records by type."""

from __future__ import annotations

import socket
import time
from typing import Any

from sqlgate.audit.search import search
from sqlgate.pgwire.auth import PasswordMessage
from sqlgate.pgwire.framing import Framer
from sqlgate.pgwire.notices import ErrorResponse
from sqlgate.pgwire.startup import StartupMessage
from tests.gateway import RunningGateway


class TunedGateway(RunningGateway):
    """A :class:`RunningGateway` whose settings file gets ``extra`` YAML (top-level sections) appended."""

    def __init__(self, *args: Any, extra: str = "", **kwargs: Any) -> None:
        self._extra = extra
        super().__init__(*args, **kwargs)

    def _prepare_database(self, policy: str) -> None:
        super()._prepare_database(policy)
        with (self.workdir / "sqlgate.yaml").open("a") as settings:
            settings.write(self._extra)


def records(gateway: RunningGateway, kind: str, *, grep: str | None = None) -> list[dict[str, Any]]:
    """Audit records of type ``kind`` (oldest first), after the log has written what it was given."""
    services = gateway.gateway.services
    gateway.call(services.audit.flush())
    page = gateway.call(search(services.store, type=kind, grep=grep, limit=1000))
    return list(reversed(page.records))


def wait_for(condition: Any, timeout: float = 30.0, every: float = 0.1) -> Any:
    """Poll ``condition`` until it returns something true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, "the condition did not hold in time"
        time.sleep(every)


def logged_in(port: int, user: str, token: str, database: str = "demo") -> tuple[socket.socket, Framer]:
    """A raw client logged in through the gateway (after its first ReadyForQuery)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(StartupMessage({"user": user, "database": database}).encode())
    framer = Framer("backend")
    while True:
        data = sock.recv(65536)
        assert data, "the gateway closed the connection during login"
        framer.feed(data)
        while (frame := framer.next_frame()) is not None:
            if frame.type == ord("R") and frame.data[5:9] == b"\x00\x00\x00\x03":
                sock.sendall(PasswordMessage(token).encode())
            elif frame.type == ord("E"):
                raise AssertionError(ErrorResponse.decode(frame.payload).message)
            elif frame.type == ord("Z"):
                return sock, framer


def error_of(sock: socket.socket, framer: Framer) -> ErrorResponse | None:
    """The next ErrorResponse the gateway sends before it closes the connection (None: closed without one)."""
    while True:
        while (frame := framer.next_frame()) is not None:
            if frame.type == ord("E"):
                return ErrorResponse.decode(frame.payload)
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            return None
        if not data:
            return None
        framer.feed(data)

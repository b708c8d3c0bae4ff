"""Hostile bytes from clients: never a crash, a leaked session or lease, or a task left running."""

from __future__ import annotations

import asyncio
import os
import socket

import psycopg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sqlgate.pgwire.auth import PasswordMessage
from sqlgate.pgwire.startup import StartupMessage

DEEP = os.environ.get("SQLGATE_FUZZ_DEEP") == "1"
FUZZ = settings(
    max_examples=400 if DEEP else 25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def send_and_drain(port: int, chunks: list[bytes]) -> None:
    """Connect, send the chunks, read what comes back until the gateway closes or goes quiet."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.settimeout(0.5)
        try:
            for chunk in chunks:
                sock.sendall(chunk)
            while sock.recv(65536):
                pass
        except (TimeoutError, ConnectionError, OSError):
            pass


def logged_in_prefix(gateway) -> bytes:
    token = gateway.token("erin", ("engineers",))
    startup = StartupMessage({"user": "erin", "database": "demo"}).encode()
    return startup + PasswordMessage(token).encode()


def gateway_is_healthy(gateway) -> None:
    with psycopg.connect(**gateway.conninfo("erin", gateway.token("erin", ("engineers",)))) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def survived(gateway) -> None:
    """The gateway's loop met no unhandled exception, and it still answers a normal query."""
    gateway.assert_no_loop_errors()
    gateway_is_healthy(gateway)


def wait_until_no_sessions(gateway) -> None:
    services = gateway.gateway.services
    for _ in range(100):
        if not services.sessions.list():
            return
        gateway.call(asyncio.sleep(0.05))
    raise AssertionError(f"sessions left behind: {services.sessions.list()}")


@FUZZ
@given(chunks=st.lists(st.binary(min_size=0, max_size=300), min_size=1, max_size=5))
def test_arbitrary_bytes_before_login(gateway, chunks):
    send_and_drain(gateway.pg_port, chunks)
    survived(gateway)


@FUZZ
@given(chunks=st.lists(st.binary(min_size=1, max_size=300), min_size=1, max_size=5))
def test_arbitrary_bytes_after_login(gateway, chunks):
    send_and_drain(gateway.pg_port, [logged_in_prefix(gateway), *chunks])
    wait_until_no_sessions(gateway)
    survived(gateway)


@FUZZ
@given(
    kinds=st.lists(st.sampled_from(b"QPBEDSCHdcfX"), min_size=1, max_size=6),
    bodies=st.lists(st.binary(max_size=64), min_size=6, max_size=6),
)
def test_well_framed_garbage_after_login(gateway, kinds, bodies):
    """Messages with valid headers and nonsense bodies: errors, never a crash."""
    messages = [
        bytes([kind]) + (len(body) + 4).to_bytes(4, "big") + body for kind, body in zip(kinds, bodies, strict=False)
    ]
    send_and_drain(gateway.pg_port, [logged_in_prefix(gateway), b"".join(messages)])
    wait_until_no_sessions(gateway)
    survived(gateway)


def test_after_fuzzing_the_gateway_still_serves_and_holds_nothing(gateway):
    for chunks in ([b"\x00\x00\x00\x08\x04\xd2\x16\x2f"], [b"\xff" * 64], [b"\x00\x00\x00\x03"]):
        send_and_drain(gateway.pg_port, chunks)
    send_and_drain(gateway.pg_port, [logged_in_prefix(gateway), b"Q\x00\x00\x00\x04"])
    wait_until_no_sessions(gateway)
    gateway_is_healthy(gateway)
    tasks = gateway.call(_task_names())
    assert not [name for name in tasks if "ClientConnection" in name]


async def _task_names() -> list[str]:
    await asyncio.sleep(0.2)
    return [repr(task.get_coro()) for task in asyncio.all_tasks() if task is not asyncio.current_task()]

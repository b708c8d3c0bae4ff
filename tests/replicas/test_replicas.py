"""Two and three ``sqlgate serve`` processes on one PostgreSQL state database act as one gateway."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.pgserver import PgServer
from tests.replicas.cluster import Cluster

WAIT_SECONDS = 15.0  # a deadline for what should take under two seconds, never a measured bound


@pytest.fixture
def two(pg_server: PgServer, tmp_path: Path) -> Iterator[Cluster]:
    """Two replicas, reached directly (each test chooses the replica)."""
    cluster = Cluster(pg_server, tmp_path, 2)
    try:
        yield cluster.start()
    finally:
        cluster.stop()


def _current_user(conninfo: dict[str, object]) -> str:
    with psycopg.connect(**conninfo, sslmode="disable") as conn:  # type: ignore[arg-type]
        return str(conn.execute("SELECT current_user").fetchone()[0])  # type: ignore[index]


def test_a_lease_minted_by_one_replica_is_reused_by_the_other(two: Cluster) -> None:
    """Alice's login minted on r1 is the one r2 hands her; one lease row, minted by r1."""
    r1, r2 = two.replicas
    token = two.token("alice")
    first = _current_user(r1.conninfo("alice", token))
    second = _current_user(r2.conninfo("alice", token))
    assert first == second
    assert first.startswith(two.prefix)
    rows = two.state("SELECT minted_by, state, sealed_secret IS NOT NULL FROM broker_leases")
    assert rows == [("r1", "active", True)]


def test_replicas_asked_at_once_mint_one_login_per_identity(two: Cluster) -> None:
    """Eight people connecting to both replicas at the same moment: one login each (advisory lock across replicas)."""
    people = [f"bob{i}" for i in range(8)]
    tokens = {person: two.token(person) for person in people}
    users: dict[str, set[str]] = {person: set() for person in people}
    errors: list[BaseException] = []
    start = threading.Barrier(len(people) * len(two.replicas))

    def connect(person: str, conninfo: dict[str, object]) -> None:
        start.wait()
        try:
            users[person].add(_current_user(conninfo))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [
        threading.Thread(target=connect, args=(person, r.conninfo(person, tokens[person])))
        for person in people
        for r in two.replicas
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors
    assert all(len(logins) == 1 for logins in users.values()), users
    assert two.state("SELECT count(*) FROM broker_leases") == [(len(people),)]


def test_a_session_on_one_replica_is_listed_and_ended_from_the_other(two: Cluster) -> None:
    """GET /v1/sessions on r2 shows r1's session with r1's name; DELETE on r2 ends it with 57P01."""
    r1, r2 = two.replicas
    conn = psycopg.connect(**r1.conninfo("alice", two.token("alice")), sslmode="disable", autocommit=True)
    try:
        conn.execute("SELECT 1")
        session = _wait_for_session(r2.http_url, two, "alice")
        assert session["replica"] == "r1"
        assert session["database"] == "demo"
        ended = httpx.delete(
            f"{r2.http_url}/v1/sessions/{session['id']}",
            params={"reason": "maintenance"},
            headers=two.admin_headers(),
            timeout=10,
        )
        assert ended.status_code == 200, ended.text
        assert ended.json() == {"id": session["id"], "ended": True, "replica": "r1"}
        with pytest.raises(psycopg.errors.AdminShutdown, match="maintenance"):
            conn.execute("SELECT 1")
    finally:
        conn.close()
    missing = httpx.delete(f"{r2.http_url}/v1/sessions/{session['id']}", headers=two.admin_headers(), timeout=10)
    assert missing.status_code == 404


def _wait_for_session(http_url: str, cluster: Cluster, subject_name: str) -> dict[str, object]:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        listed = httpx.get(f"{http_url}/v1/sessions", headers=cluster.admin_headers(), timeout=10)
        assert listed.status_code == 200, listed.text
        for session in listed.json()["sessions"]:
            if session["principal"].get("name") == subject_name and session["kind"] == "pgwire":
                return dict(session)
        time.sleep(0.1)
    raise AssertionError(f"no session of {subject_name} listed on {http_url}")


def test_a_revocation_in_the_shared_state_ends_sessions_on_every_replica(two: Cluster) -> None:
    """A lease marked revoking (as any replica's broker writes it) ends its sessions on both replicas; reaped after."""
    token = two.token("carol")
    sessions = [psycopg.connect(**r.conninfo("carol", token), sslmode="disable", autocommit=True) for r in two.replicas]
    try:
        logins = {str(c.execute("SELECT current_user").fetchone()[0]) for c in sessions}  # type: ignore[index]
        assert len(logins) == 1
        two.state("UPDATE broker_leases SET state = 'revoking', revoke_reason = 'revoked by test'")
        for conn in sessions:
            assert isinstance(_until_ended(conn), psycopg.errors.AdminShutdown)
        deadline = time.monotonic() + 30  # the reaper's period is 10 s
        while logins & two.logins() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not logins & two.logins()
    finally:
        for conn in sessions:
            conn.close()


def _until_ended(conn: psycopg.Connection[tuple[object, ...]]) -> BaseException | None:
    """Run a statement every 0.1 s until the session fails; the error (None when it never did)."""
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        try:
            conn.execute("SELECT 1")
        except psycopg.Error as exc:
            return exc
        time.sleep(0.1)
    return None


def test_a_replica_wrongly_marked_gone_comes_back_with_its_sessions(two: Cluster) -> None:
    """Marked gone while alive (a long pause): its next heartbeat brings it and its sessions back."""
    r1, r2 = two.replicas
    with psycopg.connect(**r1.conninfo("dan", two.token("dan")), sslmode="disable") as conn:
        conn.execute("SELECT 1")
        _wait_for_session(r2.http_url, two, "dan")
        # One transaction, as the sweep does it (a heartbeat in between would see r1 still up).
        two.state(
            "UPDATE replicas SET state = 'gone' WHERE name = 'r1'; DELETE FROM replica_sessions WHERE replica = 'r1'"
        )
        session = _wait_for_session(r2.http_url, two, "dan")
        assert session["replica"] == "r1"
        assert two.state("SELECT state FROM replicas WHERE name = 'r1' AND state <> 'gone'") == [("up",)]
        assert "marked gone while alive" in r1.tail()

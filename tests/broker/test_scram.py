"""SCRAM-SHA-256 verifiers computed here are exactly what PostgreSQL computes."""

from __future__ import annotations

import base64

import pytest

from sqlgate.broker.scram import scram_sha256_verifier


def test_matches_the_server_for_the_same_salt(pg_server):
    """PostgreSQL hashes a plaintext password; we recompute its verifier from the same salt and iterations."""
    pg_server.psql("CREATE ROLE scram_probe PASSWORD 'correct horse battery staple'")
    try:
        stored = pg_server.psql("SELECT rolpassword FROM pg_authid WHERE rolname = 'scram_probe'").strip()
    finally:
        pg_server.psql("DROP ROLE scram_probe")
    method, rest = stored.split("$", 1)
    iterations, salt = rest.split("$", 1)[0].split(":")
    assert method == "SCRAM-SHA-256"
    ours = scram_sha256_verifier(
        "correct horse battery staple", salt=base64.b64decode(salt), iterations=int(iterations)
    )
    assert ours == stored


def test_fresh_salt_each_time():
    """Two verifiers of one password differ (random 16-byte salt) and have the stored format."""
    first, second = scram_sha256_verifier("abc123XYZ"), scram_sha256_verifier("abc123XYZ")
    assert first != second
    assert first.startswith("SCRAM-SHA-256$4096:")
    assert len(base64.b64decode(first.split(":")[1].split("$")[0])) == 16


@pytest.mark.parametrize("password", ["", "naïve", "tab\there"])
def test_refuses_passwords_that_would_need_saslprep(password):
    """Only non-empty printable ASCII is hashed here (what the broker generates)."""
    with pytest.raises(ValueError, match="printable ASCII"):
        scram_sha256_verifier(password)


def test_refuses_weak_iteration_counts():
    with pytest.raises(ValueError, match="4096"):
        scram_sha256_verifier("abc", iterations=1000)

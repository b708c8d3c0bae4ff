"""`sqlgate doctor` on a gateway of several replicas: the shared lease key and the gateway id."""

from __future__ import annotations

from pathlib import Path

from sqlgate.cli.doctor import check_replicas
from sqlgate.config import Settings

STATE = "postgresql://sqlgate@127.0.0.1:5432/sqlgate"


def test_sqlite_state_has_nothing_to_check() -> None:
    """One replica: no replica checks."""
    assert check_replicas(Settings()) == []


def test_no_lease_key_and_no_gateway_id_are_warned() -> None:
    """Without them replicas mint their own logins and refuse each other's tokens: two warnings with fixes."""
    checks = check_replicas(Settings(state=STATE))
    assert [(c.check, c.status) for c in checks] == [("replicas", "warn"), ("gateway id", "warn")]
    assert all(c.fix for c in checks)


def test_a_short_or_missing_key_fails_and_a_good_one_passes(tmp_path: Path) -> None:
    """A key under 32 bytes, or a file that is not there, fails; a good key is ok."""
    short, good = tmp_path / "short.key", tmp_path / "good.key"
    short.write_text("too short\n")
    good.write_text("k" * 64 + "\n")
    results = {}
    for name, path in {"short": short, "missing": tmp_path / "none.key", "good": good}.items():
        settings = Settings(state=STATE, public_url="https://sqlgate.example.com", server={"lease_key_file": path})
        results[name] = [(c.check, c.status) for c in check_replicas(settings)]
    assert results == {
        "short": [("replicas", "fail")],
        "missing": [("replicas", "fail")],
        "good": [("replicas", "ok")],
    }

"""Lease passwords sealed with the key every replica shares."""

from __future__ import annotations

import pytest

from sqlgate.broker.sealing import LeaseSealer
from sqlgate.errors import BrokerError

KEY = b"k" * 48


def test_a_sealed_password_opens_with_the_same_key_and_lease() -> None:
    """Another replica with the same key reads the password back; the sealed form does not contain it."""
    sealed = LeaseSealer(KEY).seal("a" * 32, "s3cret-password")
    assert "s3cret" not in sealed
    assert LeaseSealer(KEY).open("a" * 32, sealed) == "s3cret-password"


@pytest.mark.parametrize(
    ("key", "lease_id", "change"),
    [
        (b"x" * 48, "a" * 32, lambda s: s),  # another key
        (KEY, "b" * 32, lambda s: s),  # copied onto another lease
        (KEY, "a" * 32, lambda s: s[:-4] + ("AAAA" if not s.endswith("AAAA") else "BBBB")),  # altered
        (KEY, "a" * 32, lambda s: "v0." + s[3:]),  # unknown format
        (KEY, "a" * 32, lambda s: s[:3] + "!!!"),  # not base64
    ],
    ids=["other key", "other lease", "altered", "unknown format", "not base64"],
)
def test_a_sealed_password_does_not_open_otherwise(key: bytes, lease_id: str, change: object) -> None:
    """Wrong key, wrong lease id or altered bytes: a BrokerError, never a wrong password."""
    assert callable(change)
    sealed = change(LeaseSealer(KEY).seal("a" * 32, "s3cret-password"))
    with pytest.raises(BrokerError):
        LeaseSealer(key).open(lease_id, sealed)

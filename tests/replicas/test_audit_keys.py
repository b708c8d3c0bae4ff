"""Which registered replica audit keys a verifier adds to the keys it trusts."""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sqlgate.audit.keys import KeyRing, TrustedKey, fingerprint
from sqlgate.audit.trust import Trust
from sqlgate.replicas.audit_keys import with_registered


def test_unpinned_trust_takes_every_registered_key_and_says_so() -> None:
    """Nothing pinned: the host key plus every other replica's key, with a note to pin them."""
    host, other = Ed25519PrivateKey.generate().public_key(), Ed25519PrivateKey.generate().public_key()
    trust = Trust(KeyRing([TrustedKey(host, "host")], pinned=False), ["host key trusted"])
    result = with_registered(trust, [], [("r1", host), ("r2", other)])
    assert {k.fingerprint for k in result.ring.keys} == {fingerprint(host), fingerprint(other)}
    assert not result.ring.pinned
    assert any("pin every replica's key" in note for note in result.notes)


def test_pinned_trust_takes_only_the_registered_keys_it_pins() -> None:
    """trusted_keys names r2's fingerprint: r2's registered key is used, r3's is not; r2's note goes."""
    host = Ed25519PrivateKey.generate().public_key()
    r2, r3 = Ed25519PrivateKey.generate().public_key(), Ed25519PrivateKey.generate().public_key()
    pins = [fingerprint(host), f"sha256:{fingerprint(r2)}"]
    note = f"pinned fingerprint {fingerprint(r2)} matches no key available here"
    trust = Trust(KeyRing([TrustedKey(host, "host")], pinned=True), [note])
    result = with_registered(trust, pins, [("r2", r2), ("r3", r3)])
    assert {k.fingerprint for k in result.ring.keys} == {fingerprint(host), fingerprint(r2)}
    assert result.ring.pinned
    assert result.notes == []

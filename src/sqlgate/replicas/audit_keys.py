"""Every replica's audit public key, registered in the shared state so any replica can verify every chain.

Each replica signs its own chain with its own key (``data_dir/audit``, or
``audit.signing_key_file``). At start it registers the public half in the
``replicas`` table; ``sqlgate audit verify`` then adds the registered keys to
the ones it trusts: all of them when nothing is pinned (and says so), or, when
``audit.trusted_keys`` pins fingerprints, only the registered keys those
fingerprints name. A replica whose own key is not pinned refuses to start (the
audit log checks that before anything is signed).
"""

from __future__ import annotations

import base64
from collections.abc import Sequence

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import select

from sqlgate.audit.keys import KeyRing, Signer, TrustedKey, fingerprint, parse_fingerprint, signing_key_path
from sqlgate.audit.trust import Trust
from sqlgate.config import Settings
from sqlgate.replicas.tables import replicas
from sqlgate.store import StateStore

REGISTERED = "registered by replica"


def encode_key(public_key: Ed25519PublicKey) -> str:
    """A public key as stored in ``replicas.audit_key``: base64 of its 32 raw bytes."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode("ascii")


def replica_audit_key(settings: Settings) -> str:
    """The audit public key of the replica in this process, for the registry (exists once audit started)."""
    path = signing_key_path(settings.data_dir, settings.audit.signing_key_file)
    return encode_key(Signer.load(path).public_key)


async def registered_keys(store: StateStore) -> list[tuple[str, Ed25519PublicKey]]:
    """(replica name, public key) of every replica that ever registered one, each key once."""
    async with store.begin() as conn:
        rows = (await conn.execute(select(replicas.c.name, replicas.c.audit_key).order_by(replicas.c.started_at))).all()
    found: dict[str, tuple[str, Ed25519PublicKey]] = {}
    for name, encoded in rows:
        if not encoded:
            continue
        key = Ed25519PublicKey.from_public_bytes(base64.b64decode(encoded))
        found.setdefault(fingerprint(key), (str(name), key))
    return list(found.values())


def with_registered(trust: Trust, pins: Sequence[str], registered: list[tuple[str, Ed25519PublicKey]]) -> Trust:
    """``trust`` plus the registered keys it may take: those ``pins`` name, or every one when nothing is pinned."""
    if not registered:
        return trust
    have = {k.fingerprint for k in trust.ring.keys}
    pinned = {digest for pin in pins if (digest := parse_fingerprint(pin)) is not None}
    added = [
        TrustedKey(key, f"{REGISTERED} {name}")
        for name, key in registered
        if fingerprint(key) not in have and (not trust.ring.pinned or fingerprint(key) in pinned)
    ]
    if not added:
        return trust
    found = {fingerprint(k.public_key) for k in added}
    notes = [note for note in trust.notes if not any(digest in note for digest in found)]
    if not trust.ring.pinned:
        notes.append(
            f"also trusted {len(added)} key(s) other replicas registered in the state database; "
            "pin every replica's key with audit.trusted_keys"
        )
    return Trust(KeyRing([*trust.ring.keys, *added], pinned=trust.ring.pinned), notes)

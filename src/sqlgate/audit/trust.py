"""Which public keys a verifier trusts: the pinned ones, or else the key found on this host.

Pins come from ``--pubkey`` (repeatable) or, when none is given, from
``audit.trusted_keys``: each a PEM public key file or a SHA-256 fingerprint. A
file brings its own key; a fingerprint selects the key found on this host if
it matches (the only key material here), and otherwise trusts nothing, so a
log re-signed with a substituted key fails. Without pins, the key on this host
is trusted and the result says so: it proves the records link and were signed
by *that* key, not that the key is the one you meant.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from sqlgate.audit.keys import KeyRing, Signer, TrustedKey, fingerprint, load_public_key, parse_fingerprint
from sqlgate.errors import ConfigError

HOST = "host"


@dataclass(slots=True)
class Trust:
    """The trusted keys and what a person should know about how they were chosen."""

    ring: KeyRing
    notes: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, object]:
        """``pinned``, the keys (key id, fingerprint, source) and the notes."""
        return {"pinned": self.ring.pinned, "keys": self.ring.describe(), "notes": list(self.notes)}


def resolve_trust(pins: Sequence[str], host_key: Path) -> Trust:
    """The keys ``pins`` name; with no pins, the public half of the signing key at ``host_key``."""
    if not pins:
        key = _host_public_key(host_key)
        if key is None:
            raise ConfigError(f"no audit signing key at {host_key}; pass --pubkey FILE (from `sqlgate audit pubkey`)")
        note = (
            f"no trusted keys pinned: trusted the signing key found on this host ({host_key}, fingerprint "
            f"{fingerprint(key)}); someone who can replace that key can re-sign the log. Pin it with "
            "audit.trusted_keys or --pubkey."
        )
        return Trust(KeyRing([TrustedKey(key, HOST)], pinned=False), [note])
    keys: list[TrustedKey] = []
    wanted: list[str] = []
    for pin in pins:
        digest = parse_fingerprint(pin)
        if digest is None:
            keys.append(TrustedKey(_read_public_key(Path(pin)), pin))
        else:
            wanted.append(digest)
    notes = _match_fingerprints(wanted, keys, host_key)
    return Trust(KeyRing(_unique(keys), pinned=True), notes)


def _match_fingerprints(wanted: list[str], keys: list[TrustedKey], host_key: Path) -> list[str]:
    """Add the host's key to ``keys`` when a wanted fingerprint is its; notes for fingerprints with no key."""
    notes = []
    have = {k.fingerprint for k in keys}
    host = _host_public_key(host_key) if any(d not in have for d in wanted) else None
    for digest in wanted:
        if digest in have:
            continue
        if host is not None and fingerprint(host) == digest:
            keys.append(TrustedKey(host, f"{HOST} (pinned by fingerprint)"))
            have.add(digest)
            continue
        found = f"the key on this host is {fingerprint(host)}" if host is not None else "no key on this host"
        notes.append(f"pinned fingerprint {digest} matches no key available here ({found}); give its PEM file")
    return notes


def _unique(keys: list[TrustedKey]) -> list[TrustedKey]:
    seen: set[str] = set()
    unique = []
    for key in keys:
        if key.fingerprint not in seen:
            seen.add(key.fingerprint)
            unique.append(key)
    return unique


def _read_public_key(path: Path) -> Ed25519PublicKey:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read trusted key {path}: {exc.strerror}") from exc
    try:
        return load_public_key(data)
    except ConfigError as exc:
        raise ConfigError(f"trusted key {path}: {exc.message}") from exc


def _host_public_key(path: Path) -> Ed25519PublicKey | None:
    if not path.exists():
        return None
    return Signer.load(path).public_key


def check_signer_trusted(signer: Signer, pins: Sequence[str], host_key: Path) -> None:
    """Refuse (ConfigError) to sign with a key that ``pins`` (``audit.trusted_keys``) does not name."""
    if not pins:
        return
    trust = resolve_trust(pins, host_key)
    if not trust.ring.trusts(signer.public_key):
        raise ConfigError(
            f"the audit signing key {host_key} (fingerprint {fingerprint(signer.public_key)}) is not one of "
            "audit.trusted_keys; add its fingerprint (`sqlgate audit pubkey --fingerprint`) if it is meant to sign"
        )

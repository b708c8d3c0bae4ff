"""The Ed25519 key that signs checkpoints and chain heads, and how it is kept.

The private key lives in ``data_dir/audit/signing_key.pem`` (created mode 0600
in a 0700 directory at first start) unless ``audit.signing_key_file`` names
one; several replicas that share a state database should share one key given
that way, so one public key verifies every chain. ``sqlgate audit pubkey``
prints the public key for verifiers (``--fingerprint``: its SHA-256 fingerprint).

A signature covers canonical ``{chain, seq, hash}`` and, since heads and
checkpoints name every chain the state database knows, ``chains`` (sorted
chain ids) too. :class:`KeyRing` is the set of public keys a verifier trusts:
pinned ones (``audit.trusted_keys``, ``--pubkey``: PEM files or fingerprints)
or, when nothing is pinned, the key found on this host, which says nothing
against someone who can replace that key.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from sqlgate.audit.canonical import canonical_bytes
from sqlgate.errors import ConfigError

log = logging.getLogger(__name__)
KEY_FILE_NAME = "signing_key.pem"


_FINGERPRINT = re.compile(r"^(?:sha256:)?([0-9a-fA-F]{64})$")
_KEY_ID = re.compile(r"^[0-9a-fA-F]{16}$")


def signed_payload(chain: str, seq: int, record_hash: str, chains: Sequence[str] | None = None) -> bytes:
    """The bytes a checkpoint or head signature covers: canonical ``{chain, seq, hash}`` (and ``chains``)."""
    payload: dict[str, object] = {"chain": chain, "seq": seq, "hash": record_hash}
    if chains is not None:
        payload["chains"] = list(chains)
    return canonical_bytes(payload)


def fingerprint(public_key: Ed25519PublicKey) -> str:
    """A public key's fingerprint: SHA-256 over its raw bytes, 64 hex digits (what ``trusted_keys`` pins)."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def key_id(public_key: Ed25519PublicKey) -> str:
    """A short name of a public key: the first 16 hex digits of its :func:`fingerprint` (not enough to pin it)."""
    return fingerprint(public_key)[:16]


def parse_fingerprint(text: str) -> str | None:
    """The lower-case fingerprint ``text`` spells (64 hex digits, ``sha256:`` optional), else None.

    Raises ConfigError for a 16-digit key id: 64 bits are too few to pin a key by.
    """
    match = _FINGERPRINT.match(text.strip())
    if match:
        return match.group(1).lower()
    if _KEY_ID.match(text.strip()):
        raise ConfigError(
            f"{text!r} is a key id; pin a key by its full SHA-256 fingerprint "
            "(`sqlgate audit pubkey --fingerprint`) or by its public key file"
        )
    return None


def public_pem(public_key: Ed25519PublicKey) -> str:
    """``public_key`` as a PEM SubjectPublicKeyInfo block."""
    pem = public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return pem.decode("ascii")


def load_public_key(data: bytes) -> Ed25519PublicKey:
    """An Ed25519 public key from PEM (a private key PEM is accepted too: its public half is used)."""
    try:
        if b"PRIVATE KEY" in data:
            private = serialization.load_pem_private_key(data, password=None)
            if isinstance(private, Ed25519PrivateKey):
                return private.public_key()
        else:
            public = serialization.load_pem_public_key(data)
            if isinstance(public, Ed25519PublicKey):
                return public
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"not a PEM Ed25519 key: {exc}") from exc
    raise ConfigError("not an Ed25519 key")


def verify_signature(public_key: Ed25519PublicKey, signature: str, payload: bytes) -> bool:
    """True when ``signature`` (base64) is ``public_key``'s signature of ``payload``."""
    try:
        public_key.verify(base64.b64decode(signature, validate=True), payload)
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


class Signer:
    """Signs checkpoints and heads with one Ed25519 private key."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._key = private_key
        self.public_key = private_key.public_key()
        self.key_id = key_id(self.public_key)

    def sign(self, chain: str, seq: int, record_hash: str, chains: Sequence[str] | None = None) -> str:
        """Base64 signature of :func:`signed_payload`."""
        return base64.b64encode(self._key.sign(signed_payload(chain, seq, record_hash, chains))).decode("ascii")

    @classmethod
    def load(cls, path: Path) -> Signer:
        """The key in ``path`` (PEM, PKCS#8, unencrypted)."""
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read audit signing key {path}: {exc.strerror}") from exc
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"audit signing key {path} is not an unencrypted PEM private key") from exc
        if not isinstance(key, Ed25519PrivateKey):
            raise ConfigError(f"audit signing key {path} is not an Ed25519 key")
        if path.stat().st_mode & 0o077:
            log.warning("audit signing key %s is readable by group or others; chmod 600 it", path)
        return cls(key)

    @classmethod
    def load_or_create(cls, path: Path) -> Signer:
        """The key in ``path``, generated there (mode 0600, directory 0700) when absent."""
        if path.exists():
            return cls.load(path)
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it first
            return cls.load(path)
        with os.fdopen(fd, "wb") as handle:
            handle.write(pem)
            handle.flush()
            os.fsync(handle.fileno())
        log.info("generated audit signing key %s (key id %s)", path, key_id(key.public_key()))
        return cls(key)


def signing_key_path(data_dir: Path, configured: Path | None) -> Path:
    """Where the signing key is: ``audit.signing_key_file``, else ``data_dir/audit/signing_key.pem``."""
    return configured if configured is not None else data_dir / "audit" / KEY_FILE_NAME


@dataclass(frozen=True, slots=True)
class TrustedKey:
    """A public key a verifier accepts, and where it came from (a file, or ``host``: the key on this host)."""

    public_key: Ed25519PublicKey
    source: str

    @property
    def key_id(self) -> str:
        """The key's short id (as checkpoints and heads name their signer)."""
        return key_id(self.public_key)

    @property
    def fingerprint(self) -> str:
        """The key's full fingerprint."""
        return fingerprint(self.public_key)


class KeyRing:
    """The public keys a verifier trusts; ``pinned`` says whether someone chose them or they were found on this host."""

    def __init__(self, keys: Iterable[TrustedKey | Ed25519PublicKey], *, pinned: bool) -> None:
        self.keys = [k if isinstance(k, TrustedKey) else TrustedKey(k, "given") for k in keys]
        self.pinned = pinned
        self._by_id = {k.key_id: k.public_key for k in self.keys}

    def verify(self, signature: str, payload: bytes, signer_id: object = None) -> bool:
        """True when one of the trusted keys (the one named ``signer_id`` first) signed ``payload``."""
        named = self._by_id.get(signer_id) if isinstance(signer_id, str) else None
        if named is not None and verify_signature(named, signature, payload):
            return True
        return any(verify_signature(k.public_key, signature, payload) for k in self.keys if k.public_key is not named)

    def trusts(self, public_key: Ed25519PublicKey) -> bool:
        """True when ``public_key`` is one of these keys."""
        return fingerprint(public_key) in {k.fingerprint for k in self.keys}

    def describe(self) -> list[dict[str, str]]:
        """The keys as JSON values: key id, fingerprint, source."""
        return [{"key_id": k.key_id, "fingerprint": k.fingerprint, "source": k.source} for k in self.keys]

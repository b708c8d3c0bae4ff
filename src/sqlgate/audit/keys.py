"""The Ed25519 key that signs checkpoints and chain heads, and how it is kept.

The private key lives in ``data_dir/audit/signing_key.pem`` (created mode 0600
in a 0700 directory at first start) unless ``audit.signing_key_file`` names
one; several replicas that share a state database should share one key given
that way, so one public key verifies every chain. ``sqlgate audit pubkey``
prints the public key for verifiers.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from sqlgate.audit.canonical import canonical_bytes
from sqlgate.errors import ConfigError

log = logging.getLogger(__name__)
KEY_FILE_NAME = "signing_key.pem"


def signed_payload(chain: str, seq: int, record_hash: str) -> bytes:
    """The bytes a checkpoint or head signature covers: canonical ``{chain, seq, hash}``."""
    return canonical_bytes({"chain": chain, "seq": seq, "hash": record_hash})


def key_id(public_key: Ed25519PublicKey) -> str:
    """A short fingerprint of a public key: the first 16 hex digits of SHA-256 over its raw bytes."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


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

    def sign(self, chain: str, seq: int, record_hash: str) -> str:
        """Base64 signature of :func:`signed_payload`."""
        return base64.b64encode(self._key.sign(signed_payload(chain, seq, record_hash))).decode("ascii")

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

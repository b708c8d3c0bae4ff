"""Sealing lease passwords with the key every replica shares (``server.lease_key_file``).

A sealed secret is ``v1.`` + base64(nonce || AES-256-GCM ciphertext); the lease
id is the associated data, so a sealed password copied onto another lease row
does not open. The AES key is derived from the configured key with HKDF-SHA256.
Pure: no I/O.
"""

from __future__ import annotations

import base64
import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from sqlgate.errors import BrokerError

_PREFIX = "v1."
_INFO = b"sqlgate lease secret v1"


class LeaseSealer:
    """Seals and opens lease passwords for one shared key."""

    def __init__(self, key: bytes) -> None:
        derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(key)
        self._aead = AESGCM(derived)

    def seal(self, lease_id: str, password: str) -> str:
        """The sealed form of ``password`` for lease ``lease_id``."""
        nonce = secrets.token_bytes(12)
        sealed = self._aead.encrypt(nonce, password.encode(), lease_id.encode())
        return _PREFIX + base64.b64encode(nonce + sealed).decode()

    def open(self, lease_id: str, sealed: str) -> str:
        """The password sealed for ``lease_id``; BrokerError when the key differs or the value was altered."""
        if not sealed.startswith(_PREFIX):
            raise BrokerError("a stored lease secret has an unknown format")
        try:
            raw = base64.b64decode(sealed.removeprefix(_PREFIX), validate=True)
            return self._aead.decrypt(raw[:12], raw[12:], lease_id.encode()).decode()
        except (InvalidTag, ValueError) as exc:
            raise BrokerError(
                f"the stored secret of lease {lease_id} does not open with this replica's lease key",
                hint="give every replica the same server.lease_key_file",
            ) from exc

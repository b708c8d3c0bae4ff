"""SCRAM-SHA-256 password verifiers, computed here so no plaintext reaches a server.

The primitives are the SCRAM client's own (:mod:`sqlgate.pgwire.scram`).

PostgreSQL stores ``SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>``
(RFC 5802, RFC 7677) and accepts that string in ``CREATE ROLE ... PASSWORD``
as an already-hashed secret; its log then never shows the password.
"""

from __future__ import annotations

import base64
import os

from sqlgate.pgwire import scram

ITERATIONS = 4096
SALT_BYTES = 16


def scram_sha256_verifier(password: str, *, salt: bytes | None = None, iterations: int = ITERATIONS) -> str:
    """The verifier PostgreSQL would store for ``password`` (printable ASCII only, so SASLprep is the identity)."""
    if not password or not password.isascii() or not password.isprintable():
        raise ValueError("SCRAM passwords generated here are non-empty printable ASCII")
    if iterations < 4096:
        raise ValueError("SCRAM iterations below 4096 are refused")
    salt = os.urandom(SALT_BYTES) if salt is None else salt
    salted = scram.salted_password(password, salt, iterations)
    stored = scram.stored_key(scram.client_key(salted))
    return f"SCRAM-SHA-256${iterations}:{_b64(salt)}${_b64(stored)}:{_b64(scram.server_key(salted))}"


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")

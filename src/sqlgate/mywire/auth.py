"""Password scrambles of the authentication plugins sqlgate speaks towards a database server.

- ``mysql_native_password``: SHA1(password) XOR SHA1(scramble + SHA1(SHA1(password)));
- ``caching_sha2_password``: SHA256(password) XOR SHA256(SHA256(SHA256(password)) + scramble),
  then, when the server has no cached entry ("full authentication"), the password
  itself: in clear over TLS, or RSA-OAEP encrypted with the server's public key;
- ``mysql_clear_password``: the password and a NUL (over TLS only, towards a server).
"""

from __future__ import annotations

import hashlib

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from sqlgate.errors import UpstreamError
from sqlgate.mywire.constants import CACHING_SHA2_PASSWORD, CLEAR_PASSWORD, NATIVE_PASSWORD

FAST_AUTH_SUCCESS = b"\x03"
PERFORM_FULL_AUTH = b"\x04"
REQUEST_PUBLIC_KEY = b"\x02"
SCRAMBLE_LENGTH = 20


def _xor(left: bytes, right: bytes) -> bytes:
    return bytes(a ^ b for a, b in zip(left, right, strict=True))


def native_password(password: str, scramble: bytes) -> bytes:
    """The mysql_native_password response (empty for an empty password)."""
    if not password:
        return b""
    stage1 = hashlib.sha1(password.encode()).digest()  # noqa: S324 - the protocol's own scheme
    stage2 = hashlib.sha1(stage1).digest()  # noqa: S324
    return _xor(stage1, hashlib.sha1(scramble[:SCRAMBLE_LENGTH] + stage2).digest())  # noqa: S324


def caching_sha2_password(password: str, scramble: bytes) -> bytes:
    """The caching_sha2_password fast-path response (empty for an empty password)."""
    if not password:
        return b""
    stage1 = hashlib.sha256(password.encode()).digest()
    stage2 = hashlib.sha256(stage1).digest()
    return _xor(stage1, hashlib.sha256(stage2 + scramble[:SCRAMBLE_LENGTH]).digest())


def rsa_encrypted_password(password: str, scramble: bytes, public_key_pem: bytes) -> bytes:
    """caching_sha2_password's full authentication without TLS: password XOR scramble, RSA-OAEP (SHA-1)."""
    try:
        key = serialization.load_pem_public_key(public_key_pem)
    except ValueError as exc:
        raise UpstreamError(f"the server's RSA public key does not load: {exc}") from exc
    if not isinstance(key, rsa.RSAPublicKey):
        raise UpstreamError("the server's public key is not an RSA key")
    plain = password.encode() + b"\x00"
    salt = scramble[:SCRAMBLE_LENGTH]
    masked = bytes(byte ^ salt[i % len(salt)] for i, byte in enumerate(plain))
    return key.encrypt(masked, padding.OAEP(mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None))  # noqa: S303


def response_for(plugin: str, password: str, scramble: bytes, *, tls: bool) -> bytes:
    """The first auth response ``plugin`` needs; UpstreamError for a plugin sqlgate does not speak."""
    if plugin == NATIVE_PASSWORD:
        return native_password(password, scramble)
    if plugin == CACHING_SHA2_PASSWORD:
        return caching_sha2_password(password, scramble)
    if plugin == CLEAR_PASSWORD:
        if not tls:
            raise UpstreamError("the database server asks for the password in clear text without TLS; refused")
        return password.encode() + b"\x00"
    raise UpstreamError(f"the database server asks for authentication plugin {plugin!r}, which sqlgate does not speak")

"""SCRAM-SHA-256 (RFC 5802, RFC 7677): the client side as a sans-IO state machine, and its primitives.

:class:`ScramClient` produces the client messages and checks the server's proof; it
never sees a socket. With the server's TLS certificate it binds the exchange to the
TLS session (``tls-server-end-point``, RFC 5929) when the server offers
``SCRAM-SHA-256-PLUS``, so a man in the middle that terminates TLS cannot relay the login.

The primitives (:func:`salted_password`, :func:`client_key`, :func:`server_key`,
:func:`stored_key`, ...) are the ones a server-side verifier needs too, so the broker
can compute ``SCRAM-SHA-256$...`` verifiers from the same code. Passwords go through
SASLprep the way PostgreSQL does it: ASCII passwords as they are; other passwords
normalized, or used as raw bytes when SASLprep refuses them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import stringprep
import unicodedata
from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from sqlgate.errors import ProtocolError, UpstreamError

MECHANISM = "SCRAM-SHA-256"
MECHANISM_PLUS = "SCRAM-SHA-256-PLUS"
MAX_ITERATIONS = 1_000_000
"""Refuse servers asking for more PBKDF2 rounds than this (about a second of CPU)."""
_NONCE_BYTES = 18


class ScramError(UpstreamError):
    """The server failed SCRAM: it reported an error, or could not prove it knows the password."""


def hmac_sha256(key: bytes, message: bytes) -> bytes:
    """HMAC-SHA-256."""
    return hmac.new(key, message, hashlib.sha256).digest()


def saslprep(password: str) -> bytes:
    """The password bytes PostgreSQL hashes: SASLprep (RFC 4013) when it applies, the raw UTF-8 otherwise."""
    raw = password.encode("utf-8", "surrogateescape")
    if password.isascii():
        return raw
    mapped = "".join(" " if stringprep.in_table_c12(c) else c for c in password if not stringprep.in_table_b1(c))
    normalized = unicodedata.normalize("NFKC", mapped)
    if not normalized or any(_prohibited(c) for c in normalized) or not _bidi_ok(normalized):
        return raw
    return normalized.encode()


def _prohibited(char: str) -> bool:
    checks = (
        stringprep.in_table_a1,
        stringprep.in_table_c12,
        stringprep.in_table_c21_c22,
        stringprep.in_table_c3,
        stringprep.in_table_c4,
        stringprep.in_table_c5,
        stringprep.in_table_c6,
        stringprep.in_table_c7,
        stringprep.in_table_c8,
        stringprep.in_table_c9,
    )
    return any(check(char) for check in checks)


def _bidi_ok(text: str) -> bool:
    """RFC 3454 section 6: right-to-left text must not mix with left-to-right and must be framed by RandAL."""
    has_randal = any(stringprep.in_table_d1(c) for c in text)
    if not has_randal:
        return True
    if any(stringprep.in_table_d2(c) for c in text):
        return False
    return stringprep.in_table_d1(text[0]) and stringprep.in_table_d1(text[-1])


def salted_password(password: str, salt: bytes, iterations: int) -> bytes:
    """``Hi(Normalize(password), salt, i)``: PBKDF2-HMAC-SHA-256."""
    return hashlib.pbkdf2_hmac("sha256", saslprep(password), salt, iterations)


def client_key(salted: bytes) -> bytes:
    """``HMAC(SaltedPassword, "Client Key")``."""
    return hmac_sha256(salted, b"Client Key")


def server_key(salted: bytes) -> bytes:
    """``HMAC(SaltedPassword, "Server Key")``."""
    return hmac_sha256(salted, b"Server Key")


def stored_key(key: bytes) -> bytes:
    """``H(ClientKey)``, what the server stores."""
    return hashlib.sha256(key).digest()


def client_proof(key: bytes, auth_message: bytes) -> bytes:
    """``ClientKey XOR HMAC(StoredKey, AuthMessage)``."""
    signature = hmac_sha256(stored_key(key), auth_message)
    return bytes(a ^ b for a, b in zip(key, signature, strict=True))


def server_signature(key: bytes, auth_message: bytes) -> bytes:
    """``HMAC(ServerKey, AuthMessage)``, the server's proof."""
    return hmac_sha256(key, auth_message)


def tls_server_end_point(certificate_der: bytes) -> bytes:
    """RFC 5929 channel binding data: the certificate's hash (SHA-256 when it is signed with MD5 or SHA-1)."""
    certificate = x509.load_der_x509_certificate(certificate_der)
    algorithm = certificate.signature_hash_algorithm
    if algorithm is None:
        raise ScramError("the server certificate's signature algorithm has no hash; channel binding is impossible")
    if isinstance(algorithm, hashes.MD5 | hashes.SHA1):
        algorithm = hashes.SHA256()
    digest = hashes.Hash(algorithm)
    digest.update(certificate_der)
    return digest.finalize()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _attributes(message: bytes, what: str) -> list[tuple[str, str]]:
    """``a=value`` pairs of a SCRAM message, in order."""
    try:
        text = message.decode("ascii")
    except UnicodeDecodeError:
        raise ProtocolError(f"SCRAM {what} is not ASCII") from None
    pairs = []
    for part in text.split(","):
        if len(part) < 2 or part[1] != "=" or not part[0].isalpha():
            raise ProtocolError(f"SCRAM {what} is malformed")
        pairs.append((part[0], part[2:]))
    return pairs


def _unbase64(value: str, what: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except binascii.Error:
        raise ProtocolError(f"SCRAM {what} is not valid base64") from None


class ScramClient:
    """One SCRAM-SHA-256 login: ``first_message()``, ``handle_server_first()``, ``verify_server_final()``.

    ``server_certificate`` (DER) enables ``tls-server-end-point`` channel binding;
    ``mechanisms`` is what the server offered in AuthenticationSASL; ``nonce`` is for tests
    only. ``max_iterations`` caps the PBKDF2 rounds a server may ask for.
    """

    def __init__(
        self,
        user: str,
        password: str,
        *,
        server_certificate: bytes | None = None,
        mechanisms: Sequence[str] = (MECHANISM, MECHANISM_PLUS),
        nonce: str | None = None,
    ) -> None:
        self._password = password
        self.max_iterations = MAX_ITERATIONS
        self._nonce = nonce or _b64(secrets.token_bytes(_NONCE_BYTES))
        self._binding = b""
        if server_certificate is not None and MECHANISM_PLUS in mechanisms:
            self.mechanism = MECHANISM_PLUS
            self._gs2 = "p=tls-server-end-point,,"
            self._binding = tls_server_end_point(server_certificate)
        elif MECHANISM in mechanisms:
            self.mechanism = MECHANISM
            self._gs2 = "y,," if server_certificate is not None else "n,,"
        else:
            raise ScramError(f"the server offers no SASL mechanism sqlgate supports: {', '.join(mechanisms)}")
        escaped = user.replace("=", "=3D").replace(",", "=2C")
        self._first_bare = f"n={escaped},r={self._nonce}"
        self._auth_message = b""
        self._server_key = b""
        self.done = False

    def __repr__(self) -> str:
        return f"ScramClient(mechanism={self.mechanism!r}, done={self.done})"

    def first_message(self) -> bytes:
        """The client-first message (for SASLInitialResponse)."""
        return f"{self._gs2}{self._first_bare}".encode()

    def handle_server_first(self, data: bytes) -> bytes:
        """Check the server-first message (AuthenticationSASLContinue) and return the client-final message."""
        if self._auth_message:
            raise ProtocolError("SCRAM server-first message received twice")
        attributes = _attributes(data, "server-first message")
        if [name for name, _ in attributes[:3]] != ["r", "s", "i"]:
            raise ProtocolError("SCRAM server-first message must start with r=, s=, i=")
        nonce, salt_text, iterations_text = (value for _, value in attributes[:3])
        if not nonce.startswith(self._nonce) or len(nonce) == len(self._nonce) or not nonce.isprintable():
            raise ProtocolError("SCRAM server nonce does not extend the client nonce")
        salt = _unbase64(salt_text, "salt")
        if not salt:
            raise ProtocolError("SCRAM salt is empty")
        if not iterations_text.isascii() or not iterations_text.isdigit():
            raise ProtocolError("SCRAM iteration count is not a number")
        iterations = int(iterations_text)
        if not 1 <= iterations <= self.max_iterations:
            raise ProtocolError(f"SCRAM iteration count {iterations} is outside 1..{self.max_iterations}")
        salted = salted_password(self._password, salt, iterations)
        without_proof = f"c={_b64(self._gs2.encode() + self._binding)},r={nonce}"
        self._auth_message = f"{self._first_bare},{data.decode('ascii')},{without_proof}".encode()
        self._server_key = server_key(salted)
        proof = client_proof(client_key(salted), self._auth_message)
        return f"{without_proof},p={_b64(proof)}".encode()

    def verify_server_final(self, data: bytes) -> None:
        """Check the server-final message (AuthenticationSASLFinal); raises :class:`ScramError` if it is wrong."""
        if not self._auth_message or self.done:
            raise ProtocolError("SCRAM server-final message out of order")
        attributes = _attributes(data, "server-final message")
        name, value = attributes[0]
        if name == "e":
            raise ScramError(f"the server refused SCRAM authentication: {value}")
        if name != "v":
            raise ProtocolError("SCRAM server-final message has no verifier")
        expected = server_signature(self._server_key, self._auth_message)
        if not hmac.compare_digest(_unbase64(value, "server signature"), expected):
            raise ScramError("the server's SCRAM signature is wrong: it does not know the password")
        self.done = True

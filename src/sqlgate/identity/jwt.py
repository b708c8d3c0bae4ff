"""Compact JWS tokens: strict parsing, header rules and signature checks.

Pure: no I/O, no clock. Every failure raises :class:`TokenRejected` with a
specific reason; no message or log line ever holds the token itself (use
:func:`fingerprint` to name one), and text read from a token before it is
verified (``kid``, ``alg``, member names) appears only through
:func:`show_untrusted`: escaped ASCII of a fixed maximum length. Messages
become audit reasons and client-facing errors, so this is the one gate.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from joserfc.errors import JoseError
from joserfc.jwk import ECKey, OKPKey, RSAKey
from joserfc.jws import JWSRegistry

from sqlgate.errors import TokenRejected

MAX_TOKEN_BYTES = 16 * 1024
"""Tokens longer than this are refused before any parsing."""

PublicKey = RSAKey | ECKey | OKPKey

_SEGMENT = re.compile(r"[A-Za-z0-9_-]+")
_HMAC_OR_NONE = re.compile(r"^(none|HS\d+)$", re.IGNORECASE)
_REMOTE_KEY_HEADERS = ("jku", "x5u", "jwk", "x5c")
_TYPES = frozenset({"JWT", "jwt", "at+jwt", "application/at+jwt", "JOSE"})


def fingerprint(token: str | bytes) -> str:
    """A short, non-reversible name for a token, safe to log: 8 hex digits of its SHA-256."""
    data = token.encode("utf-8", "surrogatepass") if isinstance(token, str) else token
    return hashlib.sha256(data).hexdigest()[:8]


SHOWN_MAX = 40
"""The longest text :func:`show_untrusted` returns."""

_CUT_SUFFIX = "...#"


def show_untrusted(value: object) -> str:
    """Attacker-controlled text as a message may hold it: quoted, escaped ASCII, at most :data:`SHOWN_MAX` characters.

    Control characters, quotes and everything outside printable ASCII are escaped
    (``ascii()``); text longer than the limit is cut and named by :func:`fingerprint`
    (``'abc...#1a2b3c4d'``), so two different long values never look the same.
    Anything but a string is shown by its type name only (None as ``(none)``).
    """
    if value is None:
        return "(none)"
    if not isinstance(value, str):
        return f"<{type(value).__name__}>"
    quoted = ascii(value)
    if len(quoted) <= SHOWN_MAX:
        return quoted
    keep = SHOWN_MAX - len(_CUT_SUFFIX) - 8
    return f"{quoted[:keep]}{_CUT_SUFFIX}{fingerprint(value)}"


def token_digest(token: str) -> bytes:
    """The SHA-256 of a token, used as a cache key so the token itself is never kept."""
    try:
        return _sha256(token.encode()).digest()
    except UnicodeEncodeError:
        raise TokenRejected("malformed token: not valid UTF-8 text") from None


_sha256 = hashlib.sha256


@dataclass(frozen=True, slots=True)
class UnverifiedToken:
    """A JWT split and decoded, its signature not yet checked."""

    header: dict[str, Any]
    claims: dict[str, Any]
    signing_input: bytes = field(repr=False)
    signature: bytes = field(repr=False)

    @property
    def alg(self) -> str:
        """The ``alg`` header (validated to be a string by :func:`parse`)."""
        return str(self.header["alg"])

    @property
    def kid(self) -> str | None:
        """The ``kid`` header, if any."""
        kid = self.header.get("kid")
        return kid if isinstance(kid, str) else None


def check_size(token: str) -> None:
    """Refuse tokens larger than :data:`MAX_TOKEN_BYTES` (checked before anything else)."""
    if len(token) > MAX_TOKEN_BYTES:
        raise TokenRejected(f"token is larger than {MAX_TOKEN_BYTES // 1024} KB")


def parse(token: str) -> UnverifiedToken:
    """Split and decode a compact JWS; header rules are checked, claims and signature are not."""
    check_size(token)
    parts = token.split(".")
    if len(parts) != 3:
        raise TokenRejected(f"not a JWT: expected 3 dot-separated segments, got {len(parts)}")
    header = _json_object(_b64decode(parts[0], "header"), "header")
    _check_header(header)
    claims = _json_object(_b64decode(parts[1], "payload"), "payload")
    signature = _b64decode(parts[2], "signature")
    return UnverifiedToken(header, claims, f"{parts[0]}.{parts[1]}".encode("ascii"), signature)


def _b64decode(segment: str, what: str) -> bytes:
    if not _SEGMENT.fullmatch(segment) or len(segment) % 4 == 1:
        raise TokenRejected(f"malformed JWT: the {what} is not base64url")
    try:
        return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError):
        raise TokenRejected(f"malformed JWT: the {what} is not base64url") from None


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise TokenRejected(f"malformed JWT: duplicate member {show_untrusted(key)}")
        result[key] = value
    return result


def _no_constants(name: str) -> Any:
    raise TokenRejected(f"malformed JWT: {name} is not valid JSON")


def _json_object(data: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(data, object_pairs_hook=_reject_duplicates, parse_constant=_no_constants)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise TokenRejected(f"malformed JWT: the {what} is not JSON") from None
    if not isinstance(value, dict):
        raise TokenRejected(f"malformed JWT: the {what} is not a JSON object")
    return value


def _check_header(header: dict[str, Any]) -> None:
    """Refuse what could change how the token is verified; other parameters (x5t, ...) are ignored."""
    alg = header.get("alg")
    if not isinstance(alg, str):
        raise TokenRejected("malformed JWT: the header has no alg")
    if _HMAC_OR_NONE.match(alg):
        raise TokenRejected(f"algorithm {show_untrusted(alg)} is never accepted (no unsigned or HMAC tokens)")
    if "crit" in header:
        raise TokenRejected("the crit header is not supported")
    for name in _REMOTE_KEY_HEADERS:
        if name in header:
            raise TokenRejected(f"the {name} header is refused: keys come only from the issuer's configured JWKS")
    if "b64" in header:
        raise TokenRejected("the b64 header (unencoded payload) is not supported")
    if "kid" in header and not isinstance(header["kid"], str):
        raise TokenRejected("malformed JWT: kid is not a string")
    if header.get("typ", "JWT") not in _TYPES:
        raise TokenRejected("unsupported token type (typ)")


class SignatureChecker:
    """Checks signatures for one issuer with its pinned algorithms (joserfc does the cryptography)."""

    def __init__(self, algorithms: Collection[str]) -> None:
        bad = [a for a in algorithms if _HMAC_OR_NONE.match(a)]
        if bad:
            raise ValueError(f"algorithms {bad} are never accepted")
        self.algorithms = frozenset(algorithms)
        self._registry = JWSRegistry(algorithms=list(self.algorithms))

    def check_alg(self, token: UnverifiedToken) -> None:
        """Refuse an algorithm this issuer is not pinned to."""
        if token.alg not in self.algorithms:
            raise TokenRejected(f"algorithm {show_untrusted(token.alg)} is not accepted from this issuer")

    def verify(self, token: UnverifiedToken, key: PublicKey) -> None:
        """Raise TokenRejected unless ``key`` made the signature with the token's (pinned) algorithm."""
        self.check_alg(token)
        try:
            alg = self._registry.get_alg(token.alg)
            alg.check_key(key)
            key.check_use("sig")
            key.check_alg(token.alg)
            valid = alg.verify(token.signing_input, token.signature, key)
        except (JoseError, ValueError):
            raise TokenRejected(
                f"the key {show_untrusted(token.kid)} cannot verify {token.alg} signatures"  # alg: pinned above
            ) from None
        if not valid:
            raise TokenRejected("bad signature")

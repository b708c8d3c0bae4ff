"""Signing keys of one issuer as a snapshot in time, and the rules for refreshing them; pure.

A snapshot is *fresh* for the HTTP cache lifetime of the JWKS response
(``Cache-Control: max-age``, clamped), then *stale but usable* for the
issuer's ``jwks_grace`` (the identity provider may be down), then unusable:
verification fails closed. A snapshot knows the RFC 7638 thumbprint of each
key it holds, so a principal verified with one key can be checked, cheaply,
against the keys the issuer publishes now (a key that left is revoked).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from joserfc.errors import JoseError
from joserfc.jwk import ECKey, OKPKey, RSAKey

from sqlgate.identity.jwt import PublicKey, show_untrusted

log = logging.getLogger(__name__)

DEFAULT_LIFETIME = 300.0
MIN_LIFETIME = 30.0
MAX_LIFETIME = 86_400.0
REFETCH_INTERVAL = 5.0
"""At most one unplanned fetch (unknown kid, failed refresh) per issuer in this many seconds."""

_KEY_TYPES: dict[str, type[RSAKey | ECKey | OKPKey]] = {"RSA": RSAKey, "EC": ECKey, "OKP": OKPKey}
_MAX_AGE = re.compile(r"(?:^|,)\s*(?:s-)?max-age\s*=\s*\"?(\d+)\"?", re.IGNORECASE)
_NO_CACHE = re.compile(r"(?:^|,)\s*(no-cache|no-store)\b", re.IGNORECASE)


def cache_lifetime(headers: Mapping[str, str]) -> float:
    """Seconds a response may be reused, from Cache-Control (clamped to [30 s, 1 day], default 5 min)."""
    value = headers.get("cache-control", "")
    if _NO_CACHE.search(value):
        return MIN_LIFETIME
    match = _MAX_AGE.search(value)
    if match is None:
        return DEFAULT_LIFETIME
    return min(max(float(match.group(1)), MIN_LIFETIME), MAX_LIFETIME)


def import_jwks(document: Any) -> list[PublicKey]:
    """The usable signature keys of a JWKS document; symmetric, encryption and malformed keys are skipped."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("not a JWKS document (no keys list)")  # noqa: TRY004 # bad remote data, handled as ValueError
    keys: list[PublicKey] = []
    for entry in document["keys"]:
        key = _import_key(entry)
        if key is not None:
            keys.append(key)
    return keys


def _import_key(entry: Any) -> PublicKey | None:
    if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
        return None
    key_class = _KEY_TYPES.get(str(entry.get("kty")))
    if key_class is None:
        return None
    public = {k: v for k, v in entry.items() if k not in ("d", "p", "q", "dp", "dq", "qi", "oth")}
    try:
        return key_class.import_key(public)
    except (JoseError, ValueError, TypeError):
        log.warning(
            "skipping a malformed %s key (kid %s) in a JWKS",
            show_untrusted(entry.get("kty")),
            show_untrusted(entry.get("kid")),
        )
        return None


_ALG_KEY_TYPE = {"RS256": "RSA", "PS256": "RSA", "ES256": "EC", "EdDSA": "OKP"}


@dataclass(frozen=True, slots=True)
class KeySnapshot:
    """The keys fetched at ``fetched_at``, fresh until ``fresh_until`` (seconds since the epoch)."""

    keys: tuple[PublicKey, ...]
    fetched_at: float
    fresh_until: float
    thumbprints: frozenset[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "thumbprints", frozenset(key.thumbprint() for key in self.keys))

    def publishes(self, thumbprint: str) -> bool:
        """True when the key with this RFC 7638 thumbprint is among these keys."""
        return thumbprint in self.thumbprints

    def find(self, kid: str | None, alg: str) -> PublicKey | None:
        """The key named ``kid``; without a kid, the only key that fits ``alg``."""
        if kid is not None:
            return next((k for k in self.keys if k.kid == kid), None)
        fitting = [k for k in self.keys if k.key_type == _ALG_KEY_TYPE.get(alg)]
        return fitting[0] if len(fitting) == 1 else None

    def is_fresh(self, now: float) -> bool:
        """True while the HTTP cache lifetime lasts."""
        return now < self.fresh_until

    def is_usable(self, now: float, grace: float) -> bool:
        """True while fresh, or stale for less than ``grace`` seconds."""
        return now < self.fresh_until + grace


def static_snapshot(keys: list[PublicKey]) -> KeySnapshot:
    """A snapshot that never goes stale (keys held locally, e.g. the dev issuer's)."""
    return KeySnapshot(tuple(keys), 0.0, float("inf"))

"""Verified principals by token digest, kept until the token expires (bounded, least recently used out).

Each entry remembers the thumbprint of the key that signed its token (None for
AWS IAM, which has no keys), so the authenticator can drop it as soon as the
issuer stops publishing that key.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from sqlgate.identity.principal import Principal


@dataclass(frozen=True, slots=True)
class CachedPrincipal:
    """A cached principal, when it stops being valid, and the key that vouched for it."""

    principal: Principal
    valid_until: float
    key_thumbprint: str | None = None


class PrincipalCache:
    """An LRU map from a token's SHA-256 to its principal, the time it stops being valid and its signing key."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._entries: OrderedDict[bytes, CachedPrincipal] = OrderedDict()

    def get(self, digest: bytes, now: float) -> CachedPrincipal | None:
        """The cached entry, or None when absent or expired (expired entries are dropped)."""
        entry = self._entries.get(digest)
        if entry is None:
            return None
        if now >= entry.valid_until:
            del self._entries[digest]
            return None
        self._entries.move_to_end(digest)
        return entry

    def put(self, digest: bytes, principal: Principal, valid_until: float, key_thumbprint: str | None = None) -> None:
        """Remember ``principal`` until ``valid_until``; the least recently used entry goes when full."""
        if self.size <= 0:
            return
        self._entries[digest] = CachedPrincipal(principal, valid_until, key_thumbprint)
        self._entries.move_to_end(digest)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def replace(self, digest: bytes, principal: Principal) -> None:
        """Swap the principal of an entry, keeping its expiry and key (no-op when the entry is gone)."""
        entry = self._entries.get(digest)
        if entry is not None:
            self._entries[digest] = CachedPrincipal(principal, entry.valid_until, entry.key_thumbprint)

    def drop(self, digest: bytes) -> None:
        """Forget one entry (e.g. its signing key was revoked); no-op when it is gone."""
        self._entries.pop(digest, None)

    def clear(self) -> None:
        """Forget everything (e.g. after a configuration reload)."""
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)

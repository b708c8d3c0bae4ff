"""Verified principals by token digest, kept until the token expires (bounded, least recently used out)."""

from __future__ import annotations

from collections import OrderedDict

from sqlgate.identity.principal import Principal


class PrincipalCache:
    """An LRU map from a token's SHA-256 to its principal and the time it stops being valid."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._entries: OrderedDict[bytes, tuple[Principal, float]] = OrderedDict()

    def get(self, digest: bytes, now: float) -> Principal | None:
        """The cached principal, or None when absent or expired (expired entries are dropped)."""
        entry = self._entries.get(digest)
        if entry is None:
            return None
        principal, valid_until = entry
        if now >= valid_until:
            del self._entries[digest]
            return None
        self._entries.move_to_end(digest)
        return principal

    def put(self, digest: bytes, principal: Principal, valid_until: float) -> None:
        """Remember ``principal`` until ``valid_until``; the least recently used entry goes when full."""
        if self.size <= 0:
            return
        self._entries[digest] = (principal, valid_until)
        self._entries.move_to_end(digest)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def replace(self, digest: bytes, principal: Principal) -> None:
        """Swap the principal of an entry, keeping its expiry (no-op when the entry is gone)."""
        entry = self._entries.get(digest)
        if entry is not None:
            self._entries[digest] = (principal, entry[1])

    def clear(self) -> None:
        """Forget everything (e.g. after a configuration reload)."""
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)

"""Approved access requests as decide() needs them, cached for a second per (principal, database).

A cached grant still ends on time: decide() ignores grants past ``expires_at``.
Only a new approval can take up to a second to be seen, and the API forgets the
cache when it records an approval itself. The proxy and the API share one cache
(``Services.grants``).
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from sqlgate.identity.principal import Principal
from sqlgate.policy.decide import Grant

if TYPE_CHECKING:
    from sqlgate.policy.requests import RequestService

CACHE_SECONDS = 1.0
_MAX_ENTRIES = 10_000


class GrantCache:
    """Active grants per (principal key, database), read from the access-request service."""

    def __init__(self, requests: RequestService | None) -> None:
        self._requests = requests
        self._cache: dict[tuple[str, str], tuple[float, asyncio.Future[tuple[Grant, ...]]]] = {}

    async def get(self, principal: Principal, database: str) -> tuple[Grant, ...]:
        """The grants of ``principal`` on ``database`` that were active a moment ago (one read at a time)."""
        if self._requests is None:
            return ()
        key = (principal.key, database)
        hit = self._cache.get(key)
        if hit is not None and time.monotonic() - hit[0] < CACHE_SECONDS:
            return await hit[1]
        read = asyncio.ensure_future(self._read(principal, database))
        if len(self._cache) >= _MAX_ENTRIES:
            self._cache.clear()
        self._cache[key] = (time.monotonic(), read)
        try:
            return await asyncio.shield(read)
        except Exception:
            self._cache.pop(key, None)
            raise

    async def _read(self, principal: Principal, database: str) -> tuple[Grant, ...]:
        assert self._requests is not None
        return tuple(await self._requests.active_grants(principal, database))

    def forget(self) -> None:
        """Drop every cached answer (an approval was just recorded)."""
        self._cache.clear()

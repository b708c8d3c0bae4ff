"""Keeps one valid credential at hand: background refresh, lazy refresh as a fallback.

The schedule is the Cloud SQL connector's: refresh at half the remaining life, or
4 minutes before expiry when that is sooner. Credentials shorter than that refresh
at half-life. A background task does the work; if it starves (CPU-throttled
platforms such as Cloud Run without always-on CPU), :meth:`CredentialManager.get`
refreshes itself under a lock, so no caller ever gets a credential that expires
within ``margin``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random

from sqlgate.connector.credentials import Credential, CredentialSource
from sqlgate.connector.errors import GatewayUnavailable

__all__ = ["CredentialManager", "refresh_delay"]

log = logging.getLogger("sqlgate.connector")

FOUR_MINUTES = 240.0
_MIN_DELAY = 0.5
_RETRY_DELAY = 1.0
_NO_EXPIRY_RECHECK = 3600.0


def refresh_delay(remaining: float) -> float:
    """Seconds to wait before refreshing a credential with ``remaining`` seconds left."""
    if FOUR_MINUTES < remaining < 2 * FOUR_MINUTES:
        return remaining - FOUR_MINUTES
    return max(remaining / 2, 0.0)


class CredentialManager:
    """Holds the current credential of ``source`` and refreshes it before it expires.

    ``margin`` is the least life a handed-out credential has left (capped at a fifth
    of its lifetime, so short test credentials still work).
    """

    def __init__(self, source: CredentialSource, *, margin: float = 30.0) -> None:
        self.source = source
        self.margin = margin
        self._current: Credential | None = None
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._wakeup = asyncio.Event()
        self._refresh_at = 0.0
        self.refreshes = 0

    async def start(self) -> Credential:
        """Fetch the first credential (errors propagate) and start the background refresh."""
        credential = await self.get()
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._refresh_loop(), name="sqlgate-credentials")
        return credential

    async def get(self) -> Credential:
        """A credential valid for at least the margin; fetched now if the current one is not."""
        current = self._current
        if current is not None and self._usable(current):
            return current
        async with self._lock:
            current = self._current
            if current is not None and self._usable(current):
                return current
            return await self._fetch()

    async def refresh(self) -> Credential:
        """Fetch a new credential now (for example after the database refused the current one)."""
        stale = self._current
        async with self._lock:
            if self._current is not stale and self._current is not None and self._usable(self._current):
                return self._current  # another caller already replaced it
            return await self._fetch()

    def margin_for(self, credential: Credential) -> float:
        """The margin that applies to ``credential``: ``margin``, at most a fifth of its lifetime."""
        lifetime = credential.lifetime
        return self.margin if lifetime is None else min(self.margin, lifetime / 5)

    @property
    def current(self) -> Credential | None:
        """The credential held now (possibly about to be refreshed)."""
        return self._current

    async def aclose(self) -> None:
        """Stop the background refresh and close the source."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.source.aclose()

    def _usable(self, credential: Credential) -> bool:
        remaining = credential.remaining()
        return remaining is None or remaining > self.margin_for(credential)

    async def _fetch(self) -> Credential:
        credential = await self.source.fetch()
        if not self._usable(credential):
            raise GatewayUnavailable(
                f"the credential source gave a login for {credential.user!r} that expires too soon "
                f"({credential.remaining() or 0:.1f} s left)",
                hint="check the gateway's clock and the ttl asked for",
            )
        self._current = credential
        remaining = credential.remaining()
        delay = _NO_EXPIRY_RECHECK if remaining is None else max(refresh_delay(remaining), _MIN_DELAY)
        self._refresh_at = asyncio.get_running_loop().time() + delay
        self.refreshes += 1
        self._wakeup.set()
        log.info("sqlgate connector: new credential for %s, expires %s", credential.user, credential.expires_at)
        return credential

    async def _refresh_loop(self) -> None:
        while True:
            self._wakeup.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), self._next_delay())
                continue  # someone refreshed lazily: plan again from the new credential
            try:
                await self.refresh_if_due()
            except Exception as exc:  # the task must outlive any failure; get() still refreshes lazily
                log.warning("sqlgate connector: background refresh failed, will retry: %s", exc)
                await asyncio.sleep(self._retry_delay())

    async def refresh_if_due(self) -> None:
        """Refresh when the schedule says the current credential is due."""
        if self._next_delay() <= 0:
            async with self._lock:
                if self._next_delay() <= 0:
                    await self._fetch()

    def _retry_delay(self) -> float:
        """After a failed refresh: about a second, sooner when the current credential has little life left."""
        jittered = _RETRY_DELAY * (1 + random.random())  # noqa: S311 - jitter, not crypto
        remaining = self._current.remaining() if self._current is not None else None
        return jittered if remaining is None else max(min(jittered, remaining / 4), 0.1)

    def _next_delay(self) -> float:
        return self._refresh_at - asyncio.get_running_loop().time()

"""The credential manager: the refresh schedule, background refresh, and the lazy fallback."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from sqlgate.connector import Credential, CredentialManager, GatewayCredentials, GatewayUnavailable
from sqlgate.connector.credentials import DirectConnect
from sqlgate.connector.manager import refresh_delay
from sqlgate.connector.testing import StaticToken
from tests.connector.conftest import GOOD_TOKEN


class Minting(DirectConnect):
    """Gives a new credential of ``ttl`` seconds at each fetch, slowly (like a real gateway)."""

    def __init__(self, ttl: float, delay: float = 0.05) -> None:
        self.ttl = ttl
        self.delay = delay
        self.fetches = 0

    async def fetch(self) -> Credential:
        await asyncio.sleep(self.delay)
        self.fetches += 1
        expires = datetime.now(UTC) + timedelta(seconds=self.ttl)
        return Credential("127.0.0.1", 5432, "db", f"u{self.fetches}", "pw", expires)


@pytest.mark.parametrize(
    ("remaining", "delay"), [(3600, 1800), (900, 450), (400, 160), (300, 60), (200, 100), (10, 5), (0, 0), (-5, 0)]
)
def test_refresh_schedule(remaining, delay):
    """Half the remaining life, or 4 minutes before expiry when sooner; short credentials at half-life."""
    assert refresh_delay(remaining) == delay


async def test_background_refresh_before_expiry(app_db, gateway):
    """With 6-second logins, the manager refreshes by itself and its credential never gets near expiry."""
    gw, url = gateway
    manager = CredentialManager(GatewayCredentials(url, app_db.name, identity=StaticToken(GOOD_TOKEN), ttl=6))
    await manager.start()
    lowest = 6.0
    try:
        for _ in range(40):
            await asyncio.sleep(0.25)
            current = manager.current
            assert current is not None
            lowest = min(lowest, current.remaining() or 0)
    finally:
        await manager.aclose()
    assert len(gw.minted) >= 3
    assert lowest > manager.margin_for(current)


async def test_lazy_refresh_when_the_background_task_starves():
    """No background task (a CPU-throttled platform): get() refreshes itself rather than hand out a dying login."""
    source = Minting(ttl=2.0)
    manager = CredentialManager(source)
    first = await manager.get()  # get() alone: no background task
    await asyncio.sleep(1.7)  # within the margin (a fifth of 2 s) of expiry
    second = await manager.get()
    assert second is not first
    assert (second.remaining() or 0) > manager.margin_for(second)
    await manager.aclose()


async def test_concurrent_lazy_refreshes_fetch_once():
    """Many callers needing a credential at once cause one fetch (the lock)."""
    source = Minting(ttl=60, delay=0.2)
    manager = CredentialManager(source)
    results = await asyncio.gather(*(manager.get() for _ in range(20)))
    assert source.fetches == 1
    assert len({id(r) for r in results}) == 1
    await manager.aclose()


async def test_a_credential_that_expires_too_soon_is_refused():
    manager = CredentialManager(Minting(ttl=-1))
    with pytest.raises(GatewayUnavailable, match="expires too soon"):
        await manager.get()
    await manager.aclose()


async def test_background_failures_are_retried():
    """A failed background refresh is retried; the current credential stays until a new one comes."""

    class Flaky(Minting):
        async def fetch(self) -> Credential:
            if self.fetches == 1:
                self.fetches += 1
                raise GatewayUnavailable("down for a moment")
            return await super().fetch()

    source = Flaky(ttl=2.0)
    manager = CredentialManager(source)
    await manager.start()
    await asyncio.sleep(2.6)
    current = manager.current
    await manager.aclose()
    assert current is not None
    assert current.user != "u1"
    assert (current.remaining() or 0) > 0

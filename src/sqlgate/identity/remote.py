"""Where an issuer's keys come from: its discovery document and JWKS over HTTP, or local keys.

This is the only module of the OIDC path that does I/O. Fetches are
serialized per issuer and rate-limited (:data:`REFETCH_INTERVAL`), so a flood
of tokens with unknown ``kid`` values or an identity-provider outage costs at
most one request every few seconds. :meth:`KeySource.publishes` tells the
authenticator whether a cached principal's signing key is still published: a
key the issuer no longer lists revokes every principal it verified.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx

from sqlgate.config import is_loopback
from sqlgate.errors import ConfigError, TokenRejected
from sqlgate.identity.jwt import PublicKey, show_untrusted
from sqlgate.identity.keys import REFETCH_INTERVAL, KeySnapshot, cache_lifetime, import_jwks, static_snapshot

log = logging.getLogger(__name__)

FETCH_TIMEOUT = 5.0
DISCOVERY_PATH = "/.well-known/openid-configuration"


class KeySource(Protocol):
    """Gives the public key that signed a token, or says why there is none."""

    async def key(self, kid: str | None, alg: str, now: float) -> PublicKey:
        """The key named ``kid`` (TokenRejected when unknown or when keys are unavailable)."""
        ...

    def is_usable(self, now: float) -> bool:
        """True when tokens can be verified now without a fetch."""
        ...

    def publishes(self, thumbprint: str, now: float) -> bool:
        """True while the key with this thumbprint is in the issuer's current keys (never waits for a fetch)."""
        ...

    async def refresh(self, now: float) -> None:
        """Fetch keys now if allowed (warm-up at start-up)."""
        ...

    async def aclose(self) -> None:
        """Stop any background fetch."""
        ...


def require_safe_url(url: str, what: str) -> str:
    """``url`` if it is https, or http to a loopback host; else ConfigError."""
    parts = urlsplit(url)
    if parts.scheme == "https" or (parts.scheme == "http" and is_loopback(parts.hostname or "")):
        return url
    raise ConfigError(f"{what} {url!r} must be an https:// URL (http:// only on loopback)")


class StaticKeys:
    """Keys held locally (the built-in dev issuer): always usable, never fetched."""

    def __init__(self, keys: list[PublicKey]) -> None:
        self._snapshot = static_snapshot(keys)

    async def key(self, kid: str | None, alg: str, now: float) -> PublicKey:
        """The local key named ``kid``."""
        del now
        found = self._snapshot.find(kid, alg)
        if found is None:
            raise TokenRejected(unknown_key(kid))
        return found

    def is_usable(self, now: float) -> bool:
        """Always True."""
        del now
        return True

    def publishes(self, thumbprint: str, now: float) -> bool:
        """True when the key is one of these."""
        del now
        return self._snapshot.publishes(thumbprint)

    async def refresh(self, now: float) -> None:
        """Nothing to fetch."""

    async def aclose(self) -> None:
        """Nothing to stop."""


class RemoteKeys:
    """One issuer's JWKS, found by discovery and cached with its HTTP lifetime plus a grace period.

    Stale keys (past their max-age, within the grace period) keep serving while a
    background fetch replaces them, so an identity provider that hangs never
    holds up verification; only a first fetch, keys past their grace period, or
    an unknown ``kid`` make a caller wait (at most once per few seconds).
    """

    def __init__(
        self,
        issuer: str,
        http: httpx.AsyncClient,
        *,
        grace: float,
        jwks_uri: str | None = None,
        refetch_interval: float = REFETCH_INTERVAL,
    ) -> None:
        self.issuer = require_safe_url(issuer, "issuer")
        self._http = http
        self._grace = grace
        self._jwks_uri = None if jwks_uri is None else require_safe_url(jwks_uri, "jwks_uri")
        self._discovered = jwks_uri is not None
        self._refetch_interval = refetch_interval
        self._snapshot: KeySnapshot | None = None
        self._last_attempt = -math.inf
        self._lock = asyncio.Lock()
        self._background: asyncio.Task[KeySnapshot | None] | None = None

    async def key(self, kid: str | None, alg: str, now: float) -> PublicKey:
        """The key named ``kid``; fetches when stale or when ``kid`` is new (rate-limited)."""
        snapshot = self._snapshot
        if snapshot is None or not snapshot.is_usable(now, self._grace):
            snapshot = await self._fetch_if_allowed(now)
        elif not snapshot.is_fresh(now):
            self._refresh_in_background(now)
        if snapshot is None or not snapshot.is_usable(now, self._grace):
            raise TokenRejected("signing keys of this issuer are unavailable (identity provider unreachable)")
        found = snapshot.find(kid, alg)
        if found is None and kid is not None:
            snapshot = await self._fetch_if_allowed(now) or snapshot
            found = snapshot.find(kid, alg)
        if found is None:
            raise TokenRejected(unknown_key(kid))
        return found

    def is_usable(self, now: float) -> bool:
        """True while keys are fresh or within the grace period."""
        return self._snapshot is not None and self._snapshot.is_usable(now, self._grace)

    def publishes(self, thumbprint: str, now: float) -> bool:
        """True while the last fetched keys hold this key; keys past their max-age are refetched in the background.

        Through an outage the last fetched keys stand (no fetch, no news of a
        revocation); the first fetch that no longer lists the key revokes it.
        """
        snapshot = self._snapshot
        if snapshot is None:
            return False
        if not snapshot.is_fresh(now):
            self._refresh_in_background(now)
        return snapshot.publishes(thumbprint)

    async def refresh(self, now: float) -> None:
        """Fetch keys now unless a fetch happened in the last few seconds."""
        await self._fetch_if_allowed(now)

    async def aclose(self) -> None:
        """Cancel a background fetch still running."""
        if self._background is not None:
            self._background.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._background

    def _refresh_in_background(self, now: float) -> None:
        idle = self._background is None or self._background.done()
        if idle and now - self._last_attempt >= self._refetch_interval:
            self._background = asyncio.create_task(self._fetch_if_allowed(now))

    async def _fetch_if_allowed(self, now: float) -> KeySnapshot | None:
        async with self._lock:
            if now - self._last_attempt < self._refetch_interval:
                return self._snapshot
            self._last_attempt = now
            try:
                self._snapshot = await self._fetch(now)
            except (httpx.HTTPError, ValueError, ConfigError) as exc:
                log.warning("cannot fetch signing keys of %s: %s", self.issuer, _describe(exc))
            return self._snapshot

    async def _fetch(self, now: float) -> KeySnapshot:
        if not self._discovered:
            self._jwks_uri = await self._discover()
            self._discovered = True
        assert self._jwks_uri is not None
        response = await self._get(self._jwks_uri)
        keys = import_jwks(response.json())
        log.info("fetched %d signing keys of %s", len(keys), self.issuer)
        return KeySnapshot(tuple(keys), now, now + cache_lifetime(response.headers))

    async def _discover(self) -> str:
        response = await self._get(self.issuer.rstrip("/") + DISCOVERY_PATH)
        document: Any = response.json()
        if not isinstance(document, dict) or document.get("issuer") != self.issuer:
            raise ValueError("the discovery document names another issuer")
        jwks_uri = document.get("jwks_uri")
        if not isinstance(jwks_uri, str):
            raise ValueError("the discovery document has no jwks_uri")  # noqa: TRY004 # bad remote data
        try:
            return require_safe_url(jwks_uri, "jwks_uri")
        except ConfigError:  # the identity provider's text: named, not copied
            raise ValueError(f"the discovery document's jwks_uri {show_untrusted(jwks_uri)} is not https") from None

    async def _get(self, url: str) -> httpx.Response:
        response = await self._http.get(url, timeout=FETCH_TIMEOUT, headers={"accept": "application/json"})
        response.raise_for_status()
        return response


def unknown_key(kid: str | None) -> str:
    """The reason for a token whose key is not (or no longer) published; the kid shown escaped and bounded."""
    if kid is None:
        return "the token names no key (kid)"
    return f"unknown key id (kid {show_untrusted(kid)}): not among the issuer's published keys"


def _describe(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__

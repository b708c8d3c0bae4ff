"""The one entry point the proxy and the API call: ``await authenticator.authenticate(token, source)``.

JWTs go to the verifier of the issuer their ``iss`` names (the dev issuer
among them when ``identity.dev_issuer`` is on); other tokens to AWS IAM when it
is enabled. Verified principals are cached by the token's SHA-256 until the
token expires, or until the issuer stops publishing the key that signed it
(rotation or revocation at the identity provider): a cached token whose key
left the issuer's JWKS is verified afresh on its next use, and refused.
Failures raise :class:`TokenRejected` and are logged with the token's
fingerprint, never the token (and reasons hold token text only through
:func:`sqlgate.identity.jwt.show_untrusted`).

Issuers without an ``audience``, the dev issuer and AWS IAM accept only tokens
naming this gateway (:mod:`sqlgate.identity.deployment`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

import httpx

from sqlgate.config import Settings
from sqlgate.errors import ConfigError, IdentityError, TokenRejected
from sqlgate.identity import jwt
from sqlgate.identity.aws import AwsVerifier
from sqlgate.identity.cache import CachedPrincipal, PrincipalCache
from sqlgate.identity.deployment import configured_id, resolve
from sqlgate.identity.devissuer import DevIssuer
from sqlgate.identity.oidc import IssuerVerifier, Verified
from sqlgate.identity.principal import Principal
from sqlgate.identity.remote import StaticKeys
from sqlgate.metrics import VERIFY_SECONDS
from sqlgate.tracing import span

log = logging.getLogger(__name__)

Clock = Callable[[], float]


class Authenticator:
    """Turns tokens into principals for every configured identity source."""

    def __init__(
        self,
        issuers: Mapping[str, IssuerVerifier],
        *,
        aws: AwsVerifier | None = None,
        cache_size: int = 10_000,
        clock: Clock = time.time,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self._issuers = dict(issuers)
        self._aws = aws
        self._cache = PrincipalCache(cache_size)
        self._clock = clock
        self._owned_http = http

    @classmethod
    def from_settings(
        cls, settings: Settings, *, http_client: httpx.AsyncClient | None = None, clock: Clock = time.time
    ) -> Authenticator:
        """An authenticator for every source in ``settings``; it closes ``http_client`` only if it made it.

        This is the gateway's first start when its id (``data_dir/deployment-id``) is generated here.
        """
        if settings.state != "sqlite" and configured_id(settings) is None:
            log.warning(
                "this gateway's id is generated into its data_dir; replicas sharing a state database each get "
                "their own, so set public_url (or identity.deployment_id) to one value for all of them"
            )
        settings = resolve(settings)
        owned = None
        if http_client is None:
            http_client = owned = httpx.AsyncClient(follow_redirects=False)
        issuers: dict[str, IssuerVerifier] = {}
        for config in settings.identity.issuers:
            if config.issuer in issuers:
                raise ConfigError(f"identity.issuers lists {config.issuer!r} twice")
            issuers[config.issuer] = IssuerVerifier.remote(config, http_client)
        if settings.identity.dev_issuer:
            dev = DevIssuer.from_settings(settings)
            issuers[dev.url] = IssuerVerifier.local(dev.issuer_config(), StaticKeys([dev.public_key()]), method="dev")
        aws = AwsVerifier(settings.identity.aws, http_client) if settings.identity.aws.enabled else None
        return cls(issuers, aws=aws, cache_size=settings.identity.principal_cache_size, clock=clock, http=owned)

    async def authenticate(self, token: str, source: str | None = None) -> Principal:
        """The verified principal behind ``token``, seen from ``source``; TokenRejected otherwise."""
        if not isinstance(token, str) or not token:
            raise IdentityError("no token was presented")
        now = self._clock()
        try:
            jwt.check_size(token)  # before hashing or parsing anything
            digest = jwt.token_digest(token)
        except TokenRejected as exc:
            _log_rejection(token, source, exc)
            raise
        cached = self._cache.get(digest, now)
        if cached is not None and self._key_still_published(cached, now):
            if cached.principal.source == source:
                return cached.principal
            principal = cached.principal.with_source(source)
            self._cache.replace(digest, principal)  # the next call from this address allocates nothing
            return principal
        if cached is not None:
            self._cache.drop(digest)  # its key left the issuer's keys: verify afresh (and be refused)
        started = time.perf_counter()
        try:
            with span("sqlgate.login", {"sqlgate.source": source}) as current:
                verified = await self._verify(token, now)
                if current is not None:
                    current.set_attribute("sqlgate.principal", verified.principal.key)
        except TokenRejected as exc:
            VERIFY_SECONDS.labels("rejected").observe(time.perf_counter() - started)
            _log_rejection(token, source, exc)
            raise
        VERIFY_SECONDS.labels("verified").observe(time.perf_counter() - started)
        principal = verified.principal.with_source(source)
        valid_until = principal.expires_at.timestamp() if principal.expires_at else now
        self._cache.put(digest, principal, valid_until, verified.key_thumbprint)
        return principal

    def _key_still_published(self, cached: CachedPrincipal, now: float) -> bool:
        """False once the issuer of a cached principal no longer publishes the key that signed its token."""
        if cached.key_thumbprint is None:
            return True  # AWS IAM: no key to revoke; the signature lives 15 minutes
        verifier = self._issuers.get(cached.principal.issuer)
        return verifier is not None and verifier.still_publishes(cached.key_thumbprint, now)

    async def _verify(self, token: str, now: float) -> Verified:
        if token.count(".") != 2:
            if self._aws is None:
                raise TokenRejected("not a JWT: 3 dot-separated segments expected (AWS IAM tokens are not enabled)")
            principal = await self._aws.verify(token, datetime.fromtimestamp(now, UTC))
            return Verified(principal, None)
        unverified = jwt.parse(token)
        issuer = unverified.claims.get("iss")
        verifier = self._issuers.get(issuer) if isinstance(issuer, str) else None
        if verifier is None:
            raise TokenRejected("the token's issuer (iss) is not trusted here")
        return await verifier.verify(unverified, now)

    def health(self) -> dict[str, bool]:
        """Per issuer: True when its keys are fresh or within their grace period (for readiness checks)."""
        now = self._clock()
        return {issuer: verifier.keys.is_usable(now) for issuer, verifier in self._issuers.items()}

    async def refresh_keys(self) -> None:
        """Fetch every issuer's keys now (call at start-up so readiness turns green before the first token)."""
        now = self._clock()
        for verifier in self._issuers.values():
            await verifier.keys.refresh(now)

    def forget_principals(self) -> None:
        """Drop every cached principal (e.g. after the configuration changed)."""
        self._cache.clear()

    async def aclose(self) -> None:
        """Stop background key fetches; close the HTTP client this authenticator made (not one it was given)."""
        for verifier in self._issuers.values():
            await verifier.keys.aclose()
        if self._owned_http is not None:
            await self._owned_http.aclose()


def _log_rejection(token: str, source: str | None, exc: TokenRejected) -> None:
    """One line naming the token by fingerprint only (never the token; oversized ones are not even hashed)."""
    name = jwt.fingerprint(token) if len(token) <= jwt.MAX_TOKEN_BYTES else "(unhashed)"
    log.info("token %s rejected (from %s): %s", name, source or "-", exc)

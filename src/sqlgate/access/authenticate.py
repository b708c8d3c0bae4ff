"""Step one for every front end: the caller's token -> a verified principal, with its audit record.

Every failure is recorded as ``auth.failure`` (the reason only: never the token).
Success is recorded as ``auth.success`` once per wire login, and once per token
and protocol on HTTP and MCP, where each request carries the token again (the
authenticator caches the verification; the audit log need not repeat it either).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict

from sqlgate.audit.events import AuditEvent, PrincipalRef
from sqlgate.audit.log import AuditLog
from sqlgate.audit.process import AuditProcess
from sqlgate.errors import IdentityError
from sqlgate.identity.authenticator import Authenticator
from sqlgate.identity.principal import Principal

_SEEN_TOKENS = 10_000
WIRE_PROTOCOLS = frozenset({"pgwire", "mysql"})
"""Protocols whose every login is a session of its own: each one is recorded."""


def bearer(header: str) -> str:
    """The token of an ``Authorization`` header value ``Bearer <token>``; IdentityError (401) otherwise."""
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise IdentityError(
            "send your identity token as `Authorization: Bearer <token>`",
            hint="get one with `sqlgate token` or `sqlgate login`",
        )
    return token.strip()


class Authentication:
    """Verifies tokens for the proxy, the API and MCP, and audits the outcome."""

    def __init__(self, authenticator: Authenticator, audit: AuditLog | AuditProcess) -> None:
        self.authenticator = authenticator
        self.audit = audit
        self._seen: OrderedDict[bytes, None] = OrderedDict()

    async def authenticate(self, token: str, source: str | None, *, protocol: str) -> Principal:
        """The verified principal of ``token`` from ``source``; IdentityError (audited) when it does not verify."""
        try:
            principal = await self.authenticator.authenticate(token, source)
        except IdentityError as exc:
            await self.audit.record(
                AuditEvent(
                    type="auth.failure",
                    source=source,
                    outcome="failure",
                    reason=exc.message,
                    data={"protocol": protocol},
                )
            )
            raise
        if protocol in WIRE_PROTOCOLS or self._first_use(token, protocol):
            event = AuditEvent(
                type="auth.success",
                principal=PrincipalRef.of(principal),
                source=source,
                outcome="success",
                data={"protocol": protocol, "method": principal.method},
            )
            if protocol in WIRE_PROTOCOLS:
                await self.audit.record(event)
            else:
                await self.audit.submit(event)
        return principal

    def _first_use(self, token: str, protocol: str) -> bool:
        key = hashlib.sha256(f"{protocol}\0{token}".encode()).digest()[:16]
        if key in self._seen:
            self._seen.move_to_end(key)
            return False
        self._seen[key] = None
        if len(self._seen) > _SEEN_TOKENS:
            self._seen.popitem(last=False)
        return True

"""Principal: who is calling, as every other package sees it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any, Literal

AuthMethod = Literal["oidc", "aws", "dev"]


@dataclass(frozen=True, slots=True)
class Principal:
    """A verified caller.

    ``subject`` is unique within ``issuer``; ``key`` is unique across issuers.
    ``claims`` holds every claim of the token (for policy claim matches, e.g. a
    GitHub Actions ``repository``); it never holds the token itself.
    """

    subject: str
    issuer: str
    name: str
    email: str | None = None
    groups: tuple[str, ...] = ()
    claims: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    source: str | None = None
    expires_at: datetime | None = None
    method: AuthMethod = "oidc"

    @property
    def key(self) -> str:
        """A stable, unique name for this identity across issuers."""
        return f"{self.issuer}#{self.subject}"

    def with_source(self, source: str | None) -> Principal:
        """The same principal seen from another address (cached principals are shared)."""
        return Principal(
            self.subject,
            self.issuer,
            self.name,
            self.email,
            self.groups,
            self.claims,
            source,
            self.expires_at,
            self.method,
        )

    def summary(self) -> dict[str, Any]:
        """The fields the audit log and the API show (no claims beyond these)."""
        return {
            "subject": self.subject,
            "issuer": self.issuer,
            "name": self.name,
            "email": self.email,
            "groups": list(self.groups),
            "method": self.method,
        }
